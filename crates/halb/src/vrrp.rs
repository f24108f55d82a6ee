//! VRRP in the daemon, a thin shell: the config turned into the VRRP
//! thread's spec (`halb_vrrp_net`), its state changes handed to the
//! director, and the director's tracking commands handed to it. What
//! tracking decides and which hooks run is `halb_director`'s.

use crate::control::VrrpStatus;
use halb_config::{Config, VrrpAuth, VrrpInstance};
use halb_vrrp_net::{Event, GarpSpec, GroupSpec, InstanceSpec, Spec, VipSpec, VrrpHandle};
use std::time::Duration;
use tokio::sync::mpsc;

/// The shell's spec for `config`.
pub fn spec(config: &Config) -> anyhow::Result<Spec> {
    Ok(Spec {
        instances: config
            .vrrp_instances
            .iter()
            .map(|v| {
                // Followed by a resource group: announce at startup, so a
                // restarted master keeps its running groups (see
                // halb_vrrp::Config::announce_at_startup).
                let followed = config.resource_groups.iter().any(|g| {
                    halb_director::resources::instances_of(config, &g.follows).contains(&v.name)
                });
                instance_spec(v, followed)
            })
            .collect::<anyhow::Result<_>>()?,
        groups: config
            .vrrp_sync_groups
            .iter()
            .map(|g| GroupSpec {
                name: g.name.clone(),
                instances: g.instances.clone(),
            })
            .collect(),
    })
}

fn instance_spec(v: &VrrpInstance, announce_at_startup: bool) -> anyhow::Result<InstanceSpec> {
    Ok(InstanceSpec {
        name: v.name.clone(),
        interface: v.interface.clone(),
        vrid: v.virtual_router_id,
        version: if v.version == 2 {
            halb_vrrp::Version::V2
        } else {
            halb_vrrp::Version::V3
        },
        priority: v.priority,
        advert_interval: v.advert_interval,
        preempt: v.preempt,
        preempt_delay: v.preempt_delay,
        announce_at_startup,
        accept: v.accept,
        vips: v
            .virtual_ipaddress
            .iter()
            .map(|x| VipSpec {
                address: x.address,
                prefix_len: x.prefix_len,
                interface: x.interface.clone(),
                label: x.label.clone(),
            })
            .collect(),
        unicast_source: v.unicast_source,
        unicast_peers: v.unicast_peers.clone(),
        paths: v
            .paths
            .iter()
            .map(|p| halb_vrrp_net::PathSpec {
                interface: p.interface.clone(),
                unicast_source: p.unicast_source,
                unicast_peer: p.unicast_peer,
            })
            .collect(),
        auth: match &v.auth {
            VrrpAuth::None => halb_vrrp::Auth::None,
            VrrpAuth::Pass(p) => halb_vrrp::Auth::password(p),
            VrrpAuth::HmacSha256 { .. } => halb_vrrp::Auth::None,
        },
        hmac: match &v.auth {
            VrrpAuth::HmacSha256 { key, replay_window } => Some((key.clone(), *replay_window)),
            _ => None,
        },
        garp: GarpSpec {
            count: v.garp.count,
            interval: v.garp.interval,
            delay: v.garp.delay,
            refresh: v.garp.refresh,
        },
        track_interfaces: v.track_interface.clone(),
        vip_on_loopback_when_backup: v.vip_on_loopback_when_backup,
    })
}

/// VRRP as the daemon runs it.
pub struct Running {
    pub handle: std::sync::Arc<VrrpHandle>,
}

impl Running {
    /// Starts the VRRP thread if `config` has instances; its state
    /// changes arrive on the returned receiver.
    pub fn start(
        config: &Config,
    ) -> anyhow::Result<Option<(Running, mpsc::UnboundedReceiver<Event>)>> {
        if config.vrrp_instances.is_empty() {
            return Ok(None);
        }
        let (handle, events) = halb_vrrp_net::spawn(spec(config)?)?;
        tracing::info!("VRRP: {} instance(s) started", config.vrrp_instances.len());
        Ok(Some((
            Running {
                handle: std::sync::Arc::new(handle),
            },
            events,
        )))
    }

    /// Applies a reloaded config (the outcome is logged by the VRRP
    /// thread).
    pub fn reload(&mut self, config: &Config) -> anyhow::Result<()> {
        self.handle.reload_detached(spec(config)?);
        Ok(())
    }

    /// Releases every instance (priority-0 advert, VIPs removed).
    pub async fn stop(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.handle.shutdown()).await;
    }
}

/// The status rows for `halb list`.
pub fn status(handle: &VrrpHandle) -> Vec<VrrpStatus> {
    handle
        .status()
        .into_iter()
        .map(|s| VrrpStatus {
            name: s.name,
            interface: s.interface,
            vrid: s.vrid,
            version: s.version,
            state: s.state.to_owned(),
            priority: s.priority,
            effective_priority: s.effective_priority,
            master: s.master,
            vips: s.vips,
            group: s.group,
            faults: s.faults,
            adverts_sent: s.adverts_sent,
            adverts_received: s.adverts_received,
            became_master: s.became_master,
            address_mismatches: s.address_mismatches,
            takeover: s.takeover,
            awaiting_peer: s.awaiting_peer,
            releasing: s.releasing,
            drops: s.drops,
            paths: s
                .paths
                .into_iter()
                .map(|p| crate::control::VrrpPathStatus {
                    interface: p.interface,
                    peer: p.peer,
                    state: p.state.to_owned(),
                    last_heard_ms: p.last_heard_ms,
                })
                .collect(),
        })
        .collect()
}

/// Hands a VRRP thread event to the director: a state change, or a
/// path's.
pub fn feed(director: &mut halb_director::Director, ev: Event, now: std::time::Instant) {
    match ev.path {
        Some(p) => director.handle_vrrp_path(
            halb_director::VrrpPathEvent {
                instance: ev.instance,
                interface: p.interface,
                peer: p.peer,
                from: p.from,
                to: p.to,
            },
            now,
        ),
        None => director.handle_vrrp_event(event(ev), now),
    }
}

/// The director's view of a VRRP event.
pub fn event(ev: Event) -> halb_director::VrrpEvent {
    halb_director::VrrpEvent {
        instance: ev.instance,
        group: ev.group,
        state: ev.state,
        priority: ev.priority,
        group_settled: ev.group_settled,
        awaiting_peer: ev.awaiting_peer,
    }
}
