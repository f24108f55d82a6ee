//! The loop of the VRRP thread: sockets, link events, timers and
//! commands in; the sans-IO groups' actions out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use halb_netlink::{sysctl, Address, Change, LinkEvents, Netlink};
use halb_vrrp::hmac_auth::{Signer, Verifier};
use halb_vrrp::packet::{self, MULTICAST_V4, MULTICAST_V6, PRIORITY_OWNER};
use halb_vrrp::{Action, Config, Gratuitous, Router, State, SyncGroup};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::sock::{Announcer, VrrpSockets};
use crate::{
    state_name, Command, Error, Event, InstanceSpec, InstanceStatus, PathEvent, PathSpec,
    PathStatus, Spec, VipSpec,
};

struct Packet {
    id: u64,
    /// 0: the instance's interface; 1…: its extra paths.
    path: usize,
    header: packet::IpHeader,
    payload: Vec<u8>,
}

/// One extra path of an instance: its own sockets on its link.
struct PathNet {
    spec: PathSpec,
    ifindex: u32,
    source: IpAddr,
    socks: Arc<VrrpSockets>,
    recv_task: JoinHandle<()>,
}

impl Drop for PathNet {
    fn drop(&mut self) {
        self.recv_task.abort();
    }
}

struct Inst {
    id: u64,
    spec: InstanceSpec,
    ifindex: u32,
    primary: IpAddr,
    socks: Arc<VrrpSockets>,
    announcer: Arc<Announcer>,
    recv_task: JoinHandle<()>,
    garp_task: Option<JoinHandle<()>>,
    faults: BTreeSet<String>,
    signer: Option<Signer>,
    verifier: Option<Verifier>,
    delta: i32,
    master: Option<IpAddr>,
    sent: u64,
    received: u64,
    /// Transitions to MASTER (keepalived's `become_master`).
    became_master: u64,
    drops: BTreeMap<String, u64>,
    /// v3 adverts whose address list differs from ours (accepted).
    address_mismatches: u64,
    /// Extra paths (path 1, 2, …).
    paths: Vec<PathNet>,
}

impl Drop for Inst {
    fn drop(&mut self) {
        self.recv_task.abort();
        if let Some(t) = &self.garp_task {
            t.abort();
        }
    }
}

struct Group {
    name: Option<String>,
    /// The state the group's hooks were last told (once per group
    /// transition, not once per member).
    notified: Option<State>,
    sg: SyncGroup,
    insts: Vec<Inst>,
}

struct Engine {
    nl: Netlink,
    groups: Vec<Group>,
    next_id: u64,
    packets: mpsc::UnboundedSender<Packet>,
    events: mpsc::UnboundedSender<Event>,
    sysctls: sysctl::Saved,
    /// The drop rules of `accept = false` masters.
    no_accept: crate::accept::NoAccept,
}

fn family_prefix(a: IpAddr) -> u8 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Path `k` of `inst`: its interface and peer (path 0: the instance's
/// interface, its one unicast peer if it has exactly one).
fn path_of(inst: &Inst, k: usize) -> (String, Option<IpAddr>) {
    match k {
        0 => (
            inst.spec.interface.clone(),
            match inst.spec.unicast_peers.as_slice() {
                [one] => Some(*one),
                _ => None,
            },
        ),
        k => inst.paths.get(k - 1).map_or_else(
            || (format!("path{k}"), None),
            |p| (p.spec.interface.clone(), Some(p.spec.unicast_peer)),
        ),
    }
}

fn router_config(spec: &InstanceSpec, primary: IpAddr, paths: &[PathNet]) -> Config {
    let mut c = Config::new(
        spec.vrid,
        spec.priority,
        primary,
        spec.vips.iter().map(|v| v.address).collect(),
    );
    c.version = spec.version;
    c.advert_interval = spec.advert_interval;
    c.preempt = spec.preempt;
    c.preempt_delay = spec.preempt_delay;
    c.announce_at_startup = spec.announce_at_startup;
    c.accept_mode = spec.accept;
    c.unicast_peers = spec.unicast_peers.clone();
    c.auth = spec.auth.clone();
    c.extra_paths = paths.iter().map(|p| p.source).collect();
    c.gratuitous = Gratuitous {
        repeat: spec.garp.count,
        delay: spec.garp.delay,
        refresh: spec.garp.refresh,
        refresh_repeat: 1,
        on_lower_priority: true,
    };
    c
}

impl Engine {
    fn inst_err(name: &str, message: impl std::fmt::Display) -> Error {
        Error::Instance {
            instance: name.to_owned(),
            message: message.to_string(),
        }
    }

    /// The address adverts leave `interface` from: `given`, else its
    /// first IPv4 address that is not a VIP (IPv6: its link-local one).
    async fn source_address(
        &self,
        spec: &InstanceSpec,
        interface: &str,
        ifindex: u32,
        given: Option<IpAddr>,
    ) -> Result<IpAddr, Error> {
        if let Some(a) = given {
            return Ok(a);
        }
        let v6 = spec.vips.first().is_some_and(|v| v.address.is_ipv6());
        let addrs = self
            .nl
            .addresses(Some(ifindex))
            .await
            .map_err(|e| Self::inst_err(&spec.name, e))?;
        let vips: Vec<IpAddr> = spec.vips.iter().map(|v| v.address).collect();
        addrs
            .iter()
            .map(|a| a.address)
            .find(|a| match a {
                IpAddr::V4(_) => !v6 && !vips.contains(a),
                IpAddr::V6(x) => v6 && is_link_local(x),
            })
            .ok_or_else(|| {
                Self::inst_err(
                    &spec.name,
                    format!(
                        "interface {} has no {} address to send adverts from",
                        interface,
                        if v6 { "IPv6 link-local" } else { "IPv4" }
                    ),
                )
            })
    }

    /// A receiving task: packets of socket `socks` go to the loop as
    /// instance `id`'s, path `path`.
    fn recv_task(
        &self,
        id: u64,
        path: usize,
        socks: Arc<VrrpSockets>,
        name: String,
    ) -> JoinHandle<()> {
        let tx = self.packets.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(2048);
            loop {
                match socks.recv(&mut buf).await {
                    Ok((header, range)) => {
                        let payload = buf.get(range).unwrap_or_default().to_vec();
                        if tx
                            .send(Packet {
                                id,
                                path,
                                header,
                                payload,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(instance = %name, path, error = %e, "VRRP receive failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    }

    async fn make_inst(&mut self, spec: InstanceSpec) -> Result<(Inst, Router), Error> {
        let link = self
            .nl
            .link(&spec.interface)
            .await
            .map_err(|e| Self::inst_err(&spec.name, e))?;
        let v6 = spec.vips.first().is_some_and(|v| v.address.is_ipv6());
        let primary = self
            .source_address(&spec, &spec.interface, link.index, spec.unicast_source)
            .await?;
        let id = self.next_id;
        self.next_id += 1;
        let mut paths = Vec::new();
        for (k, p) in spec.paths.iter().enumerate() {
            let ifindex =
                self.nl.link_index(&p.interface).await.map_err(|e| {
                    Self::inst_err(&spec.name, format!("path {}: {e}", p.interface))
                })?;
            let source = self
                .source_address(&spec, &p.interface, ifindex, p.unicast_source)
                .await?;
            let socks = Arc::new(
                VrrpSockets::open(&p.interface, ifindex, source, false).map_err(|e| {
                    Self::inst_err(
                        &spec.name,
                        format!("VRRP socket on path {}: {e}", p.interface),
                    )
                })?,
            );
            let recv_task = self.recv_task(id, k + 1, socks.clone(), spec.name.clone());
            paths.push(PathNet {
                spec: p.clone(),
                ifindex,
                source,
                socks,
                recv_task,
            });
        }
        if spec.priority == PRIORITY_OWNER {
            // Priority 255 claims the VIPs are this router's own addresses
            // (RFC 5798 §6.1): refuse a claim the interface does not back.
            let own = self
                .nl
                .addresses(Some(link.index))
                .await
                .map_err(|e| Self::inst_err(&spec.name, e))?;
            if let Some(v) = spec
                .vips
                .iter()
                .find(|v| !own.iter().any(|a| a.address == v.address))
            {
                return Err(Self::inst_err(
                    &spec.name,
                    format!(
                        "priority = 255 means address owner, but {} is not an address of {}: \
                         use priority = 254 or less, or configure {} on {}",
                        v.address, spec.interface, v.address, spec.interface
                    ),
                ));
            }
        }
        let router = Router::new(router_config(&spec, primary, &paths))
            .map_err(|e| Self::inst_err(&spec.name, e))?;
        let socks = Arc::new(
            VrrpSockets::open(
                &spec.interface,
                link.index,
                primary,
                spec.unicast_peers.is_empty(),
            )
            .map_err(|e| Self::inst_err(&spec.name, format!("VRRP socket: {e}")))?,
        );
        let mac: [u8; 6] = link
            .mac
            .as_deref()
            .and_then(|m| m.try_into().ok())
            .unwrap_or([0; 6]);
        let announcer = Arc::new(
            Announcer::open(&spec.interface, link.index, mac, !v6, v6)
                .map_err(|e| Self::inst_err(&spec.name, format!("announce socket: {e}")))?,
        );
        let recv_task = self.recv_task(id, 0, socks.clone(), spec.name.clone());
        let mut faults = BTreeSet::new();
        let mut tracked = vec![spec.interface.clone()];
        tracked.extend(spec.track_interfaces.iter().cloned());
        for name in tracked {
            let up = match self.nl.link(&name).await {
                Ok(l) => l.is_up(),
                Err(_) => false,
            };
            if !up {
                faults.insert(format!("link {name} down"));
            }
        }
        let signer = spec.hmac.as_ref().map(|(k, _)| Signer::new(k));
        let verifier = spec.hmac.as_ref().map(|(k, w)| Verifier::new(k, *w));
        Ok((
            Inst {
                id,
                spec,
                ifindex: link.index,
                primary,
                socks,
                announcer,
                recv_task,
                garp_task: None,
                faults,
                signer,
                verifier,
                delta: 0,
                master: None,
                sent: 0,
                became_master: 0,
                received: 0,
                address_mismatches: 0,
                drops: BTreeMap::new(),
                paths,
            },
            router,
        ))
    }

    /// Builds the groups of `spec` (instances not in a group get a group
    /// of their own), without starting them.
    async fn build(&mut self, spec: &Spec) -> Result<Vec<Group>, Error> {
        let mut out = Vec::new();
        let mut grouped = BTreeSet::new();
        let mut plan: Vec<(Option<String>, Vec<InstanceSpec>)> = Vec::new();
        for g in &spec.groups {
            let members: Vec<InstanceSpec> = g
                .instances
                .iter()
                .filter_map(|n| spec.instances.iter().find(|i| &i.name == n).cloned())
                .collect();
            grouped.extend(g.instances.iter().cloned());
            plan.push((Some(g.name.clone()), members));
        }
        for i in &spec.instances {
            if !grouped.contains(&i.name) {
                plan.push((None, vec![i.clone()]));
            }
        }
        for (name, members) in plan {
            out.push(self.build_group(name, members).await?);
        }
        Ok(out)
    }

    async fn build_group(
        &mut self,
        name: Option<String>,
        members: Vec<InstanceSpec>,
    ) -> Result<Group, Error> {
        let mut insts = Vec::new();
        let mut routers = Vec::new();
        for m in members {
            let (i, r) = self.make_inst(m).await?;
            insts.push(i);
            routers.push(r);
        }
        Ok(Group {
            name,
            notified: None,
            sg: SyncGroup::new(routers),
            insts,
        })
    }

    /// Start-up reconciliation: VIPs of a non-owner found on their
    /// interface are left over from a crashed run (we are not master
    /// yet): removed. With `vip_on_loopback_when_backup` the VIPs go to
    /// `lo` and ARP is tamed on the outward interface.
    async fn reconcile(&mut self, g: usize) {
        let mut todo: Vec<(String, InstanceSpec, u32)> = Vec::new();
        if let Some(group) = self.groups.get(g) {
            for i in &group.insts {
                todo.push((i.spec.name.clone(), i.spec.clone(), i.ifindex));
            }
        }
        for (name, spec, ifindex) in todo {
            if spec.priority == PRIORITY_OWNER {
                continue;
            }
            for vip in &spec.vips {
                let idx = match &vip.interface {
                    Some(n) => match self.nl.link_index(n).await {
                        Ok(i) => i,
                        Err(_) => continue,
                    },
                    None => ifindex,
                };
                let present = self
                    .nl
                    .addresses(Some(idx))
                    .await
                    .map(|a| a.iter().any(|a| a.address == vip.address))
                    .unwrap_or(false);
                if present {
                    let a = self.vip_address(vip, idx);
                    match self.nl.delete_address(&a).await {
                        Ok(_) => tracing::warn!(
                            instance = %name, vip = %vip.address,
                            "removed a VIP left over from a previous run (not master yet)"
                        ),
                        Err(e) => {
                            tracing::error!(instance = %name, error = %e, "cannot remove left-over VIP")
                        }
                    }
                }
            }
            if spec.vip_on_loopback_when_backup {
                if let Err(e) = sysctl::direct_routing_arp(&mut self.sysctls, &spec.interface) {
                    tracing::error!(instance = %name, error = %e, "cannot set arp_ignore/arp_announce");
                }
                self.loopback_vips(&spec, true).await;
            }
        }
    }

    fn vip_address(&self, vip: &VipSpec, ifindex: u32) -> Address {
        Address {
            ifindex,
            address: vip.address,
            prefix_len: vip.prefix_len,
            label: vip.label.clone(),
        }
    }

    async fn loopback_vips(&self, spec: &InstanceSpec, add: bool) {
        let Ok(lo) = self.nl.link_index("lo").await else {
            return;
        };
        for vip in &spec.vips {
            let a = Address {
                ifindex: lo,
                address: vip.address,
                prefix_len: family_prefix(vip.address),
                label: None,
            };
            let r = if add {
                self.nl.add_address(&a).await
            } else {
                self.nl.delete_address(&a).await
            };
            if let Err(e) = r {
                tracing::error!(instance = %spec.name, vip = %vip.address, error = %e, "loopback VIP");
            }
        }
    }

    async fn vip_ifindex(&self, inst: &Inst, vip: &VipSpec) -> Option<u32> {
        match &vip.interface {
            None => Some(inst.ifindex),
            Some(n) => self.nl.link_index(n).await.ok(),
        }
    }

    /// Drains group `g`'s actions.
    async fn drain(&mut self, g: usize) {
        loop {
            let Some(group) = self.groups.get_mut(g) else {
                return;
            };
            let Some((m, action)) = group.sg.poll_action() else {
                break;
            };
            self.act(g, m, action).await;
        }
    }

    async fn act(&mut self, g: usize, m: usize, action: Action) {
        let Some(group) = self.groups.get(g) else {
            return;
        };
        let Some(inst) = group.insts.get(m) else {
            return;
        };
        match action {
            Action::SendAdvert(adv) => {
                let dsts: Vec<IpAddr> = if inst.spec.unicast_peers.is_empty() {
                    vec![if inst.primary.is_ipv4() {
                        IpAddr::V4(MULTICAST_V4)
                    } else {
                        IpAddr::V6(MULTICAST_V6)
                    }]
                } else {
                    inst.spec.unicast_peers.clone()
                };
                let now_us = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
                let (primary, socks, ifindex) = (inst.primary, inst.socks.clone(), inst.ifindex);
                let name = inst.spec.name.clone();
                let Some(inst) = self.groups.get_mut(g).and_then(|gr| gr.insts.get_mut(m)) else {
                    return;
                };
                // The instance's interface, then each extra path (unicast
                // to its peer, from our address there).
                let mut sends: Vec<(IpAddr, IpAddr, Arc<crate::sock::VrrpSockets>, u32)> = dsts
                    .into_iter()
                    .map(|dst| (primary, dst, socks.clone(), ifindex))
                    .collect();
                sends.extend(
                    inst.paths
                        .iter()
                        .map(|p| (p.source, p.spec.unicast_peer, p.socks.clone(), p.ifindex)),
                );
                for (src, dst, socks, ifindex) in sends {
                    match adv.encode(src, dst) {
                        Ok(mut bytes) => {
                            if let Some(s) = &mut inst.signer {
                                s.sign(&mut bytes, src, dst, now_us);
                            }
                            match socks.send(&bytes, dst, ifindex) {
                                Ok(()) => inst.sent += 1,
                                Err(e) => {
                                    tracing::debug!(instance = %name, %dst, error = %e, "advert not sent")
                                }
                            }
                        }
                        Err(e) => {
                            tracing::error!(instance = %name, error = %e, "advert not encoded")
                        }
                    }
                }
            }
            Action::AddAddresses { addresses, .. } => {
                if inst.spec.priority == PRIORITY_OWNER {
                    return; // the owner's addresses are its own
                }
                let spec = inst.spec.clone();
                if spec.vip_on_loopback_when_backup {
                    self.loopback_vips(&spec, false).await;
                }
                for vip in spec.vips.iter().filter(|v| addresses.contains(&v.address)) {
                    let Some(idx) = self.vip_ifindex(inst, vip).await else {
                        tracing::error!(instance = %spec.name, vip = %vip.address, "VIP interface not found");
                        continue;
                    };
                    let a = self.vip_address(vip, idx);
                    match self.nl.add_address(&a).await {
                        Ok(Change::Done) => {
                            tracing::info!(instance = %spec.name, vip = %vip.address, "VIP added")
                        }
                        Ok(Change::AlreadyThere) => {}
                        Err(e) => {
                            tracing::error!(instance = %spec.name, error = %e, "VIP not added")
                        }
                    }
                }
            }
            Action::RemoveAddresses { addresses } => {
                if inst.spec.priority == PRIORITY_OWNER {
                    return;
                }
                let spec = inst.spec.clone();
                for vip in spec.vips.iter().filter(|v| addresses.contains(&v.address)) {
                    let Some(idx) = self.vip_ifindex(inst, vip).await else {
                        continue;
                    };
                    let a = self.vip_address(vip, idx);
                    match self.nl.delete_address(&a).await {
                        Ok(Change::Done) => {
                            tracing::info!(instance = %spec.name, vip = %vip.address, "VIP removed")
                        }
                        Ok(Change::AlreadyThere) => {}
                        Err(e) => {
                            tracing::error!(instance = %spec.name, error = %e, "VIP not removed")
                        }
                    }
                }
                if spec.vip_on_loopback_when_backup {
                    self.loopback_vips(&spec, true).await;
                }
            }
            Action::SendGratuitous { addresses, count } => {
                let ann = inst.announcer.clone();
                let interval = inst.spec.garp.interval;
                let name = inst.spec.name.clone();
                let task = tokio::spawn(async move {
                    for n in 0..count {
                        if n > 0 {
                            tokio::time::sleep(interval).await;
                        }
                        for a in &addresses {
                            if let Err(e) = ann.announce(*a) {
                                tracing::debug!(instance = %name, addr = %a, error = %e, "announcement not sent");
                            }
                        }
                    }
                });
                if let Some(i) = self.groups.get_mut(g).and_then(|gr| gr.insts.get_mut(m)) {
                    if let Some(old) = i.garp_task.replace(task) {
                        if !old.is_finished() {
                            // A newer burst supersedes it.
                            old.abort();
                        }
                    }
                }
            }
            Action::PeerReleased => {
                let group = &self.groups[g];
                let priority = group.sg.members().get(m).map_or(0, Router::priority);
                tracing::info!(instance = %inst.spec.name, "VRRP: the previous master released its resource groups");
                let _ = self.events.send(Event {
                    instance: inst.spec.name.clone(),
                    group: group.name.clone(),
                    state: State::Master,
                    priority,
                    group_settled: false,
                    awaiting_peer: false,
                    path: None,
                });
            }
            Action::PathChange { path, from, to } => {
                let group = &self.groups[g];
                let (interface, peer) = path_of(inst, path);
                let state = group
                    .sg
                    .members()
                    .get(m)
                    .map_or(State::Initialize, Router::state);
                let priority = group.sg.members().get(m).map_or(0, Router::priority);
                match to {
                    halb_vrrp::PathState::Dead => tracing::warn!(
                        instance = %inst.spec.name, path = %interface, peer = ?peer,
                        from = from.as_str(), "VRRP path dead: no advert over it for the master-down interval while another path carries them"
                    ),
                    halb_vrrp::PathState::Alive => tracing::info!(
                        instance = %inst.spec.name, path = %interface, peer = ?peer,
                        from = from.as_str(), "VRRP path alive"
                    ),
                    halb_vrrp::PathState::Unknown => tracing::info!(
                        instance = %inst.spec.name, path = %interface, peer = ?peer,
                        from = from.as_str(), state = state_name(state), "VRRP path no longer watched (only a backup hears adverts)"
                    ),
                }
                let _ = self.events.send(Event {
                    instance: inst.spec.name.clone(),
                    group: group.name.clone(),
                    state,
                    priority,
                    group_settled: false,
                    awaiting_peer: false,
                    path: Some(PathEvent {
                        interface,
                        peer,
                        from,
                        to,
                    }),
                });
            }
            Action::StateChange { from, to, reason } => {
                let group = &self.groups[g];
                let priority = group.sg.members().get(m).map_or(0, Router::priority);
                let group_settled = group.notified != Some(to)
                    && group.sg.members().iter().all(|r| r.state() == to);
                let name = group.name.clone();
                let inst = &group.insts[m];
                tracing::info!(
                    instance = %inst.spec.name, from = state_name(from), to = state_name(to),
                    reason = ?reason, priority, "VRRP state change"
                );
                let awaiting_peer = group.sg.members().get(m).is_some_and(Router::awaiting_peer);
                let _ = self.events.send(Event {
                    instance: inst.spec.name.clone(),
                    group: name,
                    state: to,
                    priority,
                    group_settled,
                    awaiting_peer,
                    path: None,
                });
                let primary = inst.primary;
                if to == State::Master {
                    if let Some(i) = self.groups.get_mut(g).and_then(|gr| gr.insts.get_mut(m)) {
                        i.became_master += 1;
                    }
                }
                if group_settled {
                    if let Some(gr) = self.groups.get_mut(g) {
                        gr.notified = Some(to);
                    }
                }
                if let Some(i) = self.groups.get_mut(g).and_then(|gr| gr.insts.get_mut(m)) {
                    i.master = match to {
                        State::Master => Some(primary),
                        _ => None,
                    };
                }
            }
        }
    }

    fn find(&self, name: &str) -> Option<(usize, usize)> {
        self.groups.iter().enumerate().find_map(|(g, gr)| {
            gr.insts
                .iter()
                .position(|i| i.spec.name == name)
                .map(|m| (g, m))
        })
    }

    async fn on_packet(&mut self, p: Packet) {
        let Some((g, m)) = self
            .groups
            .iter()
            .enumerate()
            .find_map(|(g, gr)| gr.insts.iter().position(|i| i.id == p.id).map(|m| (g, m)))
        else {
            return;
        };
        // Several instances on one interface share the traffic: an advert
        // for another of our VRIDs there is not this instance's, not a
        // drop; one for a VRID nobody here runs is (RFC 5798 7.1: a VRID
        // not configured on the interface is discarded), and counted.
        let vrid = p.payload.get(1).copied();
        let (own_vrid, iface) = {
            let i = &self.groups[g].insts[m];
            (i.spec.vrid, i.spec.interface.clone())
        };
        if p.path > 0 {
            return self.on_path_packet(g, m, p).await;
        }
        if let Some(v) = vrid.filter(|v| *v != own_vrid) {
            let ours = self
                .groups
                .iter()
                .flat_map(|gr| gr.insts.iter())
                .any(|i| i.spec.vrid == v && i.spec.interface == iface);
            if !ours {
                let inst = &mut self.groups[g].insts[m];
                *inst.drops.entry("unknown_vrid".into()).or_default() += 1;
                tracing::debug!(instance = %inst.spec.name, src = %p.header.src, vrid = v, "VRRP advert for a virtual router not configured here dropped");
            }
            return;
        }
        let group = &mut self.groups[g];
        let inst = &mut group.insts[m];
        let Some(router) = group.sg.members().get(m) else {
            return;
        };
        if p.header.src == inst.primary {
            return; // our own, looped back
        }
        if !inst.spec.unicast_peers.is_empty() && !inst.spec.unicast_peers.contains(&p.header.src) {
            *inst.drops.entry("unknown_peer".into()).or_default() += 1;
            return;
        }
        let payload: &[u8] = match &mut inst.verifier {
            Some(v) => match v.verify(&p.payload, p.header.src, p.header.dst) {
                Ok(msg) => msg,
                Err(e) => {
                    *inst.drops.entry(e.reason().to_owned()).or_default() += 1;
                    tracing::debug!(instance = %inst.spec.name, src = %p.header.src, error = %e, "VRRP packet dropped");
                    return;
                }
            },
            None => &p.payload,
        };
        let expected = router.expected();
        let advert = match packet::decode(payload, &p.header, &expected) {
            Ok(a) => a,
            Err(e) => {
                let n = inst.drops.entry(e.reason().to_owned()).or_default();
                *n += 1;
                if matches!(e, packet::DecodeError::IntervalTooShort { .. }) && n.is_power_of_two()
                {
                    // A hostile or broken peer: said at the 1st, 2nd, 4th,
                    // 8th… drop, so a flood writes a few dozen lines.
                    tracing::warn!(instance = %inst.spec.name, src = %p.header.src, error = %e, dropped = *n, "VRRP advert with an advertisement interval halb does not accept dropped (it would make the backup take over at once); counted in drops as interval_too_short");
                } else {
                    tracing::debug!(instance = %inst.spec.name, src = %p.header.src, error = %e, "VRRP packet dropped");
                }
                return;
            }
        };
        inst.received += 1;
        if !expected.addresses_match(&advert) {
            // v3 (v2 dropped it above): RFC 5798 §7.1 says log and go on.
            if inst.address_mismatches == 0 {
                tracing::warn!(instance = %inst.spec.name, src = %p.header.src, got = ?advert.addresses.to_ip_addrs(), "VRRP advert lists other virtual addresses than configured here (misconfiguration?); counted in address_mismatches");
            }
            inst.address_mismatches += 1;
        }
        let now = Instant::now();
        group.sg.handle_advert(m, p.header.src, &advert, now);
        self.drain(g).await;
        // After the state change, not before: a master that steps down
        // because of this advert is a backup of its sender from now on.
        let group = &mut self.groups[g];
        if advert.priority != 0
            && group.sg.members().get(m).map(|r| r.state()) == Some(State::Backup)
        {
            group.insts[m].master = Some(p.header.src);
        }
    }

    /// A packet on extra path `p.path` of member `m` of group `g`: from
    /// the path's peer only, HMAC always (the config requires it).
    async fn on_path_packet(&mut self, g: usize, m: usize, p: Packet) {
        let group = &mut self.groups[g];
        let inst = &mut group.insts[m];
        let Some(router) = group.sg.members().get(m) else {
            return;
        };
        let Some(path) = inst.paths.get(p.path - 1) else {
            return;
        };
        if p.payload.get(1).copied() != Some(inst.spec.vrid) {
            return; // another instance's over the same link, or noise
        }
        if p.header.src == path.source {
            return; // our own
        }
        if p.header.src != path.spec.unicast_peer {
            *inst.drops.entry("unknown_peer".into()).or_default() += 1;
            return;
        }
        let payload: &[u8] = match &mut inst.verifier {
            Some(v) => match v.verify(&p.payload, p.header.src, p.header.dst) {
                Ok(msg) => msg,
                Err(e) => {
                    *inst.drops.entry(e.reason().to_owned()).or_default() += 1;
                    tracing::debug!(instance = %inst.spec.name, path = %path.spec.interface, src = %p.header.src, error = %e, "VRRP packet dropped");
                    return;
                }
            },
            None => {
                // The config refuses paths without HMAC: never here.
                *inst.drops.entry("auth".into()).or_default() += 1;
                return;
            }
        };
        let expected = router.expected();
        let advert = match packet::decode(payload, &p.header, &expected) {
            Ok(a) => a,
            Err(e) => {
                *inst.drops.entry(e.reason().to_owned()).or_default() += 1;
                tracing::debug!(instance = %inst.spec.name, path = %path.spec.interface, src = %p.header.src, error = %e, "VRRP packet dropped");
                return;
            }
        };
        inst.received += 1;
        let now = Instant::now();
        group
            .sg
            .handle_advert_on(m, p.path, p.header.src, &advert, now);
        self.drain(g).await;
    }

    async fn set_fault(&mut self, name: &str, key: String, faulty: bool) {
        let Some((g, m)) = self.find(name) else {
            return;
        };
        let group = &mut self.groups[g];
        let inst = &mut group.insts[m];
        let was = !inst.faults.is_empty();
        if faulty {
            inst.faults.insert(key);
        } else {
            inst.faults.remove(&key);
        }
        let is = !inst.faults.is_empty();
        let now = Instant::now();
        if !was && is {
            group.sg.link_down(m, now);
        } else if was && !is {
            group.sg.link_up(m, now);
        }
        self.drain(g).await;
    }

    async fn on_link(&mut self, name: &str, up: bool) {
        let mut hits = Vec::new();
        for gr in &self.groups {
            for i in &gr.insts {
                if i.spec.interface == name || i.spec.track_interfaces.iter().any(|t| t == name) {
                    hits.push(i.spec.name.clone());
                }
            }
        }
        for inst in hits {
            let key = format!("link {name} down");
            let known = self
                .find(&inst)
                .map(|(g, m)| self.groups[g].insts[m].faults.contains(&key));
            if known != Some(!up) {
                tracing::info!(instance = %inst, link = name, up, "tracked link changed");
                self.set_fault(&inst, key, !up).await;
            }
        }
    }

    async fn start_group(&mut self, g: usize) {
        self.reconcile(g).await;
        let now = Instant::now();
        let Some(group) = self.groups.get_mut(g) else {
            return;
        };
        for (m, i) in group.insts.iter().enumerate() {
            if !i.faults.is_empty() {
                group.sg.link_down(m, now);
            }
        }
        // link_down in Initialize only records the link state.
        while group.sg.poll_action().is_some() {}
        group.sg.start(now);
        self.drain(g).await;
    }

    async fn stop_group(&mut self, g: usize) {
        let now = Instant::now();
        if let Some(group) = self.groups.get_mut(g) {
            group.sg.shutdown(now);
        }
        self.drain(g).await;
        let specs: Vec<InstanceSpec> = self
            .groups
            .get(g)
            .map(|gr| gr.insts.iter().map(|i| i.spec.clone()).collect())
            .unwrap_or_default();
        for s in specs {
            if s.vip_on_loopback_when_backup {
                self.loopback_vips(&s, false).await;
            }
        }
    }

    async fn reload(&mut self, spec: Spec) -> Result<(), String> {
        // Groups are compared as a whole: same name and members, every
        // member with the same identity => update in place.
        let mut keep: Vec<bool> = vec![false; self.groups.len()];
        let mut new_groups: Vec<(Option<String>, Vec<InstanceSpec>)> = Vec::new();
        let mut grouped = BTreeSet::new();
        for g in &spec.groups {
            grouped.extend(g.instances.iter().cloned());
            let members = g
                .instances
                .iter()
                .filter_map(|n| spec.instances.iter().find(|i| &i.name == n).cloned())
                .collect();
            new_groups.push((Some(g.name.clone()), members));
        }
        for i in &spec.instances {
            if !grouped.contains(&i.name) {
                new_groups.push((None, vec![i.clone()]));
            }
        }
        let mut to_build = Vec::new();
        for (name, members) in new_groups {
            let found = self.groups.iter().position(|gr| {
                gr.name == name
                    && gr.insts.len() == members.len()
                    && gr
                        .insts
                        .iter()
                        .zip(&members)
                        .all(|(i, s)| i.spec.same_identity(s))
            });
            match found {
                Some(g) if !keep[g] => {
                    keep[g] = true;
                    let now = Instant::now();
                    for (m, s) in members.into_iter().enumerate() {
                        let group = &mut self.groups[g];
                        let old = group.insts[m].spec.clone();
                        if old.priority != s.priority {
                            let p = s.priority;
                            if let Some(Err(e)) = group.sg.update(m, now, |r| r.set_priority(p)) {
                                return Err(format!("{}: {e}", s.name));
                            }
                            tracing::info!(instance = %s.name, priority = p, "priority changed by reload");
                        }
                        let addrs: Vec<IpAddr> = s.vips.iter().map(|v| v.address).collect();
                        if old.vips != s.vips {
                            // The shell acts on the new VIP specs.
                            group.insts[m].spec = s.clone();
                            let vips_old: Vec<VipSpec> = old.vips.clone();
                            // Removal needs the old specs: keep them until
                            // the actions are drained.
                            group.insts[m].spec.vips = vips_old
                                .iter()
                                .chain(s.vips.iter().filter(|v| !old.vips.contains(v)))
                                .cloned()
                                .collect();
                            if let Some(Err(e)) = group
                                .sg
                                .update(m, now, |r| r.set_virtual_addresses(addrs, now))
                            {
                                return Err(format!("{}: {e}", s.name));
                            }
                            self.drain(g).await;
                            tracing::info!(instance = %s.name, "VIPs changed by reload");
                        }
                        self.groups[g].insts[m].spec = s;
                    }
                    self.drain(g).await;
                }
                _ => to_build.push((name, members)),
            }
        }
        // Stop and drop the groups not kept, then build the new ones.
        let mut g = self.groups.len();
        while g > 0 {
            g -= 1;
            if !keep[g] {
                self.stop_group(g).await;
                self.groups.remove(g);
            }
        }
        for (name, members) in to_build {
            let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
            match self.build_group(name, members).await {
                Ok(group) => {
                    self.groups.push(group);
                    let g = self.groups.len() - 1;
                    self.start_group(g).await;
                    tracing::info!(instances = ?names, "VRRP instances (re)created by reload");
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    /// The VIPs `accept = false` drops packets to: those of every master
    /// that is not their owner (RFC 5798 §6.4.3).
    fn blocked(&self) -> BTreeSet<IpAddr> {
        let mut out = BTreeSet::new();
        for gr in &self.groups {
            for (m, i) in gr.insts.iter().enumerate() {
                let master = gr
                    .sg
                    .members()
                    .get(m)
                    .is_some_and(|r| r.state() == State::Master);
                if master && !i.spec.accept && i.spec.priority != PRIORITY_OWNER {
                    out.extend(i.spec.vips.iter().map(|v| v.address));
                }
            }
        }
        out
    }

    fn status(&self) -> Vec<InstanceStatus> {
        let mut out = Vec::new();
        for gr in &self.groups {
            for (m, i) in gr.insts.iter().enumerate() {
                let r = gr.sg.members().get(m);
                out.push(InstanceStatus {
                    name: i.spec.name.clone(),
                    interface: i.spec.interface.clone(),
                    vrid: i.spec.vrid,
                    version: i.spec.version.number(),
                    state: r.map_or("INIT", |r| state_name(r.state())),
                    priority: i.spec.priority,
                    effective_priority: r.map_or(i.spec.priority, Router::priority),
                    master: i.master,
                    primary: Some(i.primary),
                    vips: i
                        .spec
                        .vips
                        .iter()
                        .map(|v| format!("{}/{}", v.address, v.prefix_len))
                        .collect(),
                    group: gr.name.clone(),
                    faults: i.faults.iter().cloned().collect(),
                    adverts_sent: i.sent,
                    adverts_received: i.received,
                    became_master: i.became_master,
                    address_mismatches: i.address_mismatches,
                    drops: i.drops.clone(),
                    takeover: r.is_some_and(Router::takeover),
                    awaiting_peer: r.is_some_and(Router::awaiting_peer),
                    releasing: r.is_some_and(Router::releasing),
                    paths: match r {
                        Some(r) if !i.paths.is_empty() => {
                            let now = Instant::now();
                            r.paths()
                                .enumerate()
                                .map(|(k, (state, heard))| {
                                    let (interface, peer) = path_of(i, k);
                                    PathStatus {
                                        interface,
                                        peer,
                                        state: state.as_str(),
                                        last_heard_ms: heard.map(|t| {
                                            u64::try_from(
                                                now.saturating_duration_since(t).as_millis(),
                                            )
                                            .unwrap_or(u64::MAX)
                                        }),
                                    }
                                })
                                .collect()
                        }
                        _ => Vec::new(),
                    },
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

pub(crate) async fn run(
    spec: Spec,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    status: Arc<arc_swap::ArcSwap<Vec<InstanceStatus>>>,
    ready: std::sync::mpsc::Sender<Result<(), Error>>,
) {
    let nl = match Netlink::new() {
        Ok(n) => n,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    let mut links = match LinkEvents::new() {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    let (ptx, mut prx) = mpsc::unbounded_channel();
    let mut eng = Engine {
        nl,
        groups: Vec::new(),
        next_id: 1,
        packets: ptx,
        events,
        sysctls: sysctl::Saved::new(),
        no_accept: crate::accept::NoAccept::start(true),
    };
    match eng.build(&spec).await {
        Ok(groups) => eng.groups = groups,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    }
    for g in 0..eng.groups.len() {
        eng.start_group(g).await;
    }
    let _ = ready.send(Ok(()));
    status.store(Arc::new(eng.status()));
    loop {
        let deadline = eng.groups.iter().filter_map(|g| g.sg.poll_timeout()).min();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = sleep => {
                // A late wake-up (load): adverts that arrived meanwhile
                // come first, or the master-down timer fires although the
                // master is alive. Bounded: at most a burst's worth. The
                // yield first lets the socket readers woken with this
                // timer (same runtime) queue what the kernel holds.
                tokio::task::yield_now().await;
                for _ in 0..1024 {
                    let Ok(p) = prx.try_recv() else { break };
                    eng.on_packet(p).await;
                }
                let now = Instant::now();
                for g in 0..eng.groups.len() {
                    if eng.groups[g].sg.poll_timeout().is_some_and(|t| t <= now) {
                        eng.groups[g].sg.handle_timeout(now);
                        eng.drain(g).await;
                    }
                }
            }
            Some(p) = prx.recv() => eng.on_packet(p).await,
            Some(ev) = links.next() => {
                let up = ev.link.is_up() && !ev.removed;
                eng.on_link(&ev.link.name, up).await;
            }
            cmd = commands.recv() => match cmd {
                Some(Command::PriorityDelta { instance, delta }) => {
                    if let Some((g, m)) = eng.find(&instance) {
                        let i = &mut eng.groups[g].insts[m];
                        if i.delta != delta {
                            i.delta = delta;
                            eng.groups[g].sg.set_priority_delta(m, delta);
                            tracing::info!(%instance, delta, "VRRP priority adjusted by tracking");
                        }
                    }
                }
                Some(Command::Fault { instance, key, faulty }) => {
                    eng.set_fault(&instance, key, faulty).await;
                }
                Some(Command::Releasing { instance, on }) => {
                    if let Some((g, m)) = eng.find(&instance) {
                        eng.groups[g].sg.update(m, Instant::now(), |r| r.set_releasing(on, Instant::now()));
                        eng.drain(g).await;
                    }
                }
                Some(Command::Takeover { instance, on }) => {
                    if let Some((g, _)) = eng.find(&instance) {
                        if eng.groups[g].sg.set_takeover(on, Instant::now()) {
                            tracing::info!(%instance, on, "VRRP takeover (halb takeover)");
                        }
                        eng.drain(g).await;
                    }
                }
                Some(Command::Reload(spec, reply)) => {
                    let r = eng.reload(spec).await;
                    if let Err(e) = &r {
                        tracing::error!(error = %e, "VRRP reload failed");
                    }
                    let _ = reply.send(r);
                }
                Some(Command::Heartbeat(reply)) => {
                    let _ = reply.send(());
                }
                Some(Command::Shutdown(reply)) => {
                    shutdown(&mut eng).await;
                    status.store(Arc::new(eng.status()));
                    let _ = reply.send(());
                    return;
                }
                None => {
                    shutdown(&mut eng).await;
                    return;
                }
            }
        }
        eng.no_accept.set(eng.blocked());
        status.store(Arc::new(eng.status()));
    }
}

async fn shutdown(eng: &mut Engine) {
    for g in 0..eng.groups.len() {
        eng.stop_group(g).await;
    }
    eng.no_accept.close().await;
    for e in eng.sysctls.restore() {
        tracing::error!(error = %e, "cannot restore sysctl");
    }
    tracing::info!("VRRP released");
}
