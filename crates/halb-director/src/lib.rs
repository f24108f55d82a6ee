//! The director core, sans-IO: every decision the daemon makes between
//! its subsystems, as one state machine.
//!
//! It owns the running [`Config`], the health engine (the one place a
//! check's state lives), the alert policy, VRRP tracking (priority deltas
//! and faults from service health, `track_script` and `track_ping`, which
//! are checks of the health engine like any other), which role the IPVS
//! sync daemon follows, and the *effective table*: the config's table with
//! health applied, the one each data plane gets.
//!
//! No tokio, no sockets, no clock. It follows the workspace's one
//! convention for sans-IO cores:
//!
//! ```text
//! director.handle_*(…, now)           // an input: a probe result, a VRRP state change,
//!                                     // a new config, a timer, an operator command
//! while let Some(a) = director.poll_action() { /* the shell carries it out */ }
//! sleep until director.poll_timeout(), then director.handle_timeout(now)
//! ```
//!
//! The shell (the `halb` binary) runs probes, applies tables, talks to
//! the VRRP thread, runs hooks and sends alerts; it decides nothing. In
//! debug builds every input ends with [`Director::check_invariants`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod checks;
pub mod diff;
pub mod hooks;
pub mod overrides;
pub mod quorum;
pub mod resources;
pub mod role_override;
pub mod status;
pub mod tracking;

pub use checks::{CheckIndex, Owner};
pub use halb_health::Health;
pub use hooks::{hooks_for, VrrpEvent, VrrpPathEvent};
pub use status::{describe, RealHealth};

use halb_alert::{DaemonStatus, Policy, Transition};
use halb_config::{Config, Global, SyncRole};
use halb_health::{CheckId, CheckSpec, Engine, ProbeId, ProbeOutcome};
use halb_table::{DataPlaneKind, OnDown, RealServer, ServiceKey, Table};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Health changes that come within this of the last table are applied
/// together, at its end: a mass failure of 1,000 real servers is tens of
/// tables, not a thousand (each is a walk of the whole config), and a
/// transition waits at most this long for its table.
pub const APPLY_COALESCE: Duration = Duration::from_millis(10);

/// The coalescing window never exceeds this, however slow applying is.
pub const MAX_COALESCE: Duration = Duration::from_millis(250);

/// Why a table is applied (the shell prefixes its log lines with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyReason {
    /// Health changed (a transition or a dynamic weight).
    Health,
    /// A reload: the answer to `halb reload` reports this apply.
    Reload,
    /// The IPVS sync daemon follows a VRRP instance's new role.
    SyncRole,
    /// An operator's override (`halb weight|drain|disable|enable`).
    Operator,
}

/// What the director asks of its shell, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Run this probe and report with [`Director::handle_probe_result`].
    /// The engine fails it by itself at `spec.timing.timeout`.
    StartProbe {
        probe: ProbeId,
        spec: Arc<CheckSpec>,
    },
    /// The data planes take `[global]` (IPVS options, sync daemon).
    SetGlobal(Box<Global>),
    /// The IPVS sync daemon follows a VRRP instance: its new role, in
    /// force from the next apply.
    SetSyncRole(SyncRole),
    /// Apply this table to the data planes (as a diff).
    Apply { table: Table, reason: ApplyReason },
    /// VRRP tracking: `instance`'s priority is its configured one plus
    /// `delta`.
    SetPriorityDelta { instance: String, delta: i32 },
    /// `halb takeover` (`on`) or its end for `instance` (and its sync
    /// group): priority 254 and master now.
    SetTakeover { instance: String, on: bool },
    /// Resource groups following `instance` still stop here although it
    /// is no longer MASTER (`on`), or have stopped: VRRP sends releasing
    /// adverts meanwhile, so that the new master waits for them (see
    /// `halb_vrrp::Router::set_releasing`).
    SetReleasing { instance: String, on: bool },
    /// VRRP tracking: the fault `key` of `instance` is set or cleared.
    SetFault {
        instance: String,
        key: String,
        faulty: bool,
    },
    /// VRRP's config changed: (re)start VRRP with this config's
    /// instances (none: stop it). Tracking is sent again after it.
    ReloadVrrp(Arc<Config>),
    /// Send an alert.
    Alert(halb_alert::Action),
    /// Run a VRRP notify hook (program and arguments); its result is
    /// logged.
    RunHook { argv: Vec<String>, event: String },
    /// Run this resource agent call (a `halb_resource::Action::Run`: the
    /// agents shell's `call` takes it) and report with
    /// [`Director::handle_agent_result`].
    RunAgent(halb_resource::Action),
    /// Something happened to a resource group or member: for the log.
    ResourceEvent(halb_resource::ResourceEvent),
    /// A resource group is stopped here after losing its role.
    ResourceReleased { group: String },
}

/// An operator's runtime command. The operations issue adds drain,
/// weight, standby and takeover here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `halb resource cleanup|restart`, `halb maintenance on|off`.
    Resource(halb_resource::Command),
    /// `halb weight|drain|disable|enable SERVICE REAL`: SERVICE by name
    /// or VIP:port, REAL by address:port (see [`overrides`]).
    Real {
        service: String,
        real: String,
        action: overrides::RealAction,
    },
    /// `halb standby` (true) / `halb online` (false): heartbeat's
    /// `hb_standby`. Every VRRP instance gets the fault [`STANDBY_FAULT`]:
    /// a master sends a priority-0 advert and gives its VIPs (and so its
    /// resource groups) to the peer; this director takes nothing back
    /// until `halb online`, which also ends every takeover (see
    /// [`role_override`]).
    Standby(bool),
    /// `halb takeover [INSTANCE]`: heartbeat's `hb_takeover` (see
    /// [`role_override`]).
    Takeover(Option<String>),
    /// `halb reset`: every runtime override ends — the real servers'
    /// (back to config and health), standby and takeover (as `halb
    /// online`).
    Reset,
}

/// Why an operator's command was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    Resource(halb_resource::CommandError),
    Target(overrides::TargetError),
    Takeover(role_override::TakeoverError),
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::Resource(e) => e.fmt(f),
            CommandError::Target(e) => e.fmt(f),
            CommandError::Takeover(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CommandError {}

pub use quorum::QUORUM_FAULT;
pub use role_override::STANDBY_FAULT;

/// What a reload changes, decided by the director before anything is
/// applied: the answer to `halb reload` and its log come from this.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// One line per change ("s80: real server 127.0.0.1:1 weight 1 -> 5").
    pub changes: Vec<String>,
    /// Settings that changed but only take effect at the next restart.
    pub at_restart: Vec<&'static str>,
    /// VRRP instances or sync groups changed: the shell restarts VRRP
    /// ([`Action::ReloadVrrp`] is queued).
    pub vrrp: bool,
}

/// The daemon's brain. See the crate documentation.
#[derive(Debug)]
pub struct Director {
    config: Arc<Config>,
    engine: Engine,
    index: CheckIndex,
    alerts: Policy,
    tracking: tracking::Tracking,
    /// Every VRRP instance's latest state.
    roles: BTreeMap<String, halb_vrrp::State>,
    /// VRRP paths (instance, interface) alerted dead and not healed
    /// since: their next "alive" is alerted, even after a spell as
    /// master in between (where paths are not watched).
    dead_paths: BTreeSet<(String, String)>,
    /// The sync peers whose config was last alerted as differing.
    drifted_peers: BTreeSet<String>,
    /// The sync daemon's role as the followed VRRP instance set it.
    sync_role: Option<SyncRole>,
    actions: VecDeque<Action>,
    /// A table is due (health or weights changed).
    table_due: bool,
    /// Tracking may have changed.
    tracking_due: bool,
    /// Real-server transitions since the start.
    transitions: u64,
    /// The alert policy's next deadline, kept after each change of the
    /// policy (asking it is a scan of the real servers that are down).
    alert_deadline: Option<Instant>,
    /// The policy changed since `alert_deadline` was taken.
    alerts_dirty: bool,
    /// Inputs handled (paces the debug builds' invariant sweeps).
    inputs: u64,
    /// When the last table for health changes was handed out.
    last_health_apply: Option<Instant>,
    /// How long the last health apply took, as the shell reported
    /// ([`Director::handle_applied`]): the coalescing window grows with it.
    apply_cost: Duration,
    /// Resource groups: their engine and the roles it was told.
    resources: resources::Resources,
    /// `halb standby` and `halb takeover` in force.
    role_override: role_override::RoleOverride,
    /// Operators' real-server overrides.
    overrides: overrides::Overrides,
    /// `[global.quorum]`: the tracker and the fault sent to VRRP.
    quorum: quorum::Quorum,
    now: Instant,
}

/// How long `starting` and `reloading` last for `email_alert_status`: the
/// first probe round of the slowest check (warmup + interval + timeout).
pub fn first_round(config: &Config) -> Duration {
    config
        .checks
        .iter()
        .map(|c| c.spec.timing.warmup + c.spec.timing.interval + c.spec.timing.timeout)
        .max()
        .unwrap_or(Duration::ZERO)
}

/// The config's table with health applied — the table every data plane
/// gets. `health(service, real)` is the state of a real server's check
/// and the weight its dynamic check reported; `None`: unchecked (always
/// up, configured weight). A Down real server gets weight 0 (`on_down =
/// "quiescent"`) or leaves the table (`"remove"`): the real server's own
/// `on_down` if it has one, else its service's. An IPVS service's
/// `fallback` joins the table, weight 1, while none of its real servers is
/// up (as keepalived's `sorry_server` and ldirectord's `fallback`: a
/// quiescent real server at weight 0 is not up); the proxy uses its
/// fallback itself.
pub fn effective_table(
    config: &Config,
    health: impl Fn(ServiceKey, SocketAddr) -> Option<(Health, Option<u32>)>,
) -> Table {
    let mut table = config.to_table();
    // Real servers with an on_down of their own (usually none).
    let own: HashMap<(ServiceKey, SocketAddr), OnDown> = config
        .checks
        .iter()
        .filter_map(|c| c.on_down.map(|o| ((c.service, c.real), o)))
        .collect();
    for vs in &mut table.services {
        let key = vs.key();
        let service_on_down = vs.on_down;
        let mut any_up = false;
        vs.reals.retain_mut(|r| match health(key, r.addr) {
            None => {
                any_up = true;
                true
            }
            Some((Health::Up, weight)) => {
                if let Some(w) = weight {
                    r.weight = w;
                }
                any_up = true;
                true
            }
            Some((Health::Down, _)) => {
                match own.get(&(key, r.addr)).copied().unwrap_or(service_on_down) {
                    OnDown::Quiescent => {
                        r.weight = 0;
                        true
                    }
                    OnDown::Remove => false,
                }
            }
        });
        if let (DataPlaneKind::Ipvs, Some(addr), false) = (vs.data_plane, vs.fallback, any_up) {
            if !vs.reals.iter().any(|r| r.addr == addr) {
                let mut fb = RealServer::new(addr, 1);
                fb.forward = vs.fallback_forward;
                vs.reals.push(fb);
            }
        }
    }
    table
}

/// The alert a resource event makes, if it makes one: a member failing
/// or restarted, the group given up (banned here) or blocked, and the
/// group started here (its last member started).
pub fn resource_alert(
    config: &Config,
    e: &halb_resource::ResourceEvent,
) -> Option<halb_alert::ResourceTransition> {
    use halb_alert::ResourceAlert;
    use halb_resource::EventKind;
    let event = match &e.kind {
        EventKind::Failed { .. } => ResourceAlert::Failed,
        EventKind::Restarted { .. } => ResourceAlert::Restarted,
        EventKind::Banned { .. } => ResourceAlert::GivenUp,
        EventKind::Blocked { .. } => ResourceAlert::Blocked,
        EventKind::Started { .. } => {
            let last = config
                .resource_groups
                .iter()
                .find(|g| g.name == e.group)
                .and_then(|g| g.members.last())?;
            if e.member.as_deref() != Some(last.name.as_str()) {
                return None;
            }
            return Some(halb_alert::ResourceTransition {
                group: e.group.clone(),
                member: None,
                event: ResourceAlert::Started,
                reason: format!(
                    "resource group {}: started on this director (last member {} up)",
                    e.group, last.name
                ),
            });
        }
        _ => return None,
    };
    Some(halb_alert::ResourceTransition {
        group: e.group.clone(),
        member: e.member.clone(),
        event,
        reason: e.to_string(),
    })
}

/// "health checks: 1 added, 2 changed" between two configs, if any.
pub fn describe_check_changes(old: &Config, new: &Config) -> Option<String> {
    let key = |c: &halb_config::RealCheck| (c.service, c.real);
    let before: HashMap<_, _> = old.checks.iter().map(|c| (key(c), &c.spec)).collect();
    let after: HashMap<_, _> = new.checks.iter().map(|c| (key(c), &c.spec)).collect();
    let added = after.keys().filter(|k| !before.contains_key(*k)).count();
    let removed = before.keys().filter(|k| !after.contains_key(*k)).count();
    let changed = after
        .iter()
        .filter(|(k, s)| before.get(*k).is_some_and(|b| b != *s))
        .count();
    let parts: Vec<String> = [(added, "added"), (removed, "removed"), (changed, "changed")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    (!parts.is_empty()).then(|| format!("health checks: {}", parts.join(", ")))
}

impl Director {
    /// A director for `config`, its checks at their initial state, at
    /// most `max_in_flight` probes at once. Nothing is queued until
    /// [`Director::handle_start`]: the shell applies [`Director::table`]
    /// first, and refuses to start when that fails.
    pub fn new(config: Config, max_in_flight: usize, now: Instant) -> Director {
        let mut engine = Engine::new();
        engine.set_max_in_flight(Some(max_in_flight));
        let mut index = CheckIndex::default();
        let set = index.set(&config);
        engine.handle_checks(set, now);
        let resources = resources::Resources::new(&config, now);
        let mut d = Director {
            quorum: quorum::Quorum::new(&config, now),
            resources,
            role_override: role_override::RoleOverride::default(),
            overrides: overrides::Overrides::default(),
            config: Arc::new(config),
            engine,
            index,
            alerts: Policy::new(),
            tracking: tracking::Tracking::default(),
            roles: BTreeMap::new(),
            sync_role: None,
            actions: VecDeque::new(),
            table_due: false,
            tracking_due: false,
            transitions: 0,
            alert_deadline: None,
            alerts_dirty: false,
            dead_paths: BTreeSet::new(),
            drifted_peers: BTreeSet::new(),
            inputs: 0,
            last_health_apply: None,
            apply_cost: Duration::ZERO,
            now,
        };
        d.debug_check();
        d
    }

    /// The table was applied and VRRP started: alerts are `starting` for
    /// the first probe round, probes begin, and tracking is sent from the
    /// start (a real server down from the start never makes a transition,
    /// so waiting for one would leave the priority untouched while every
    /// back end is dead).
    pub fn handle_start(&mut self, now: Instant) {
        self.advance(now);
        let config = self.config.clone();
        self.set_alerts(&config, DaemonStatus::Starting);
        self.tracking_due = true;
        // Resource groups: probe every member here, then follow VRRP.
        self.resources.engine.handle_start(now);
        self.resources.sync(&config, &self.roles, now);
        // Standby and takeover restored from the state file.
        self.role_override.resend(&config, &mut self.actions);
        // Without quorum (none known yet at a start), nothing is held.
        self.quorum.sync(&config, true, &mut self.actions);
        self.debug_check();
    }

    /// A resource agent call the shell ran ([`Action::RunAgent`]) ended.
    pub fn handle_agent_result(
        &mut self,
        id: halb_resource::OpId,
        result: halb_resource::AgentResult,
        now: Instant,
    ) {
        self.advance(now);
        self.resources.engine.handle_result(id, result, now);
        self.debug_check();
    }

    /// The daemon is stopping: every resource group is stopped here, in
    /// reverse order, before VRRP releases (heartbeat's order). The shell
    /// runs the agent calls until every group is released
    /// ([`Action::ResourceReleased`], [`Director::resources_running`]).
    pub fn handle_stop_resources(&mut self, now: Instant) {
        self.advance(now);
        let config = self.config.clone();
        self.resources.stop_all(&config, now);
        self.debug_check();
    }

    /// Whether an agent call is in flight or a group is not yet released.
    pub fn resources_running(&self) -> bool {
        self.resources.engine.in_flight() > 0
            || self.resources.engine.status(self.now).iter().any(|g| {
                !matches!(
                    g.state,
                    halb_resource::State::Stopped
                        | halb_resource::State::Unmanaged
                        | halb_resource::State::Blocked
                )
            })
    }

    /// VRRP faults held until the resource groups of their instance stop
    /// here: (instance, fault, the groups still running).
    pub fn held_faults(&self) -> Vec<(String, String, Vec<String>)> {
        self.resources
            .held()
            .map(|(i, k)| {
                (
                    i.clone(),
                    k.clone(),
                    self.resources.held_for(&self.config, i),
                )
            })
            .collect()
    }

    /// Whether `halb standby` is in force.
    pub fn standby(&self) -> bool {
        self.role_override.standby()
    }

    /// `halb standby` and `halb takeover` in force.
    pub fn role_override(&self) -> &role_override::RoleOverride {
        &self.role_override
    }

    /// Standby and takeover saved by a previous run (before
    /// [`Director::handle_start`], which sends them to VRRP).
    pub fn restore_role_override(&mut self, saved: &role_override::Saved) {
        self.role_override = role_override::RoleOverride::from_saved(saved, &self.config);
    }

    /// The resource groups' status, for `halb list`.
    pub fn resource_status(&self, now: Instant) -> Vec<halb_resource::GroupStatus> {
        self.resources.engine.status(now)
    }

    /// A member's last operations with their output (`halb resource show`).
    pub fn resource_history(
        &self,
        group: &str,
        member: &str,
        now: Instant,
    ) -> Option<Vec<halb_resource::OpRecord>> {
        self.resources.engine.history(group, member, now)
    }

    /// A probe the shell ran reported.
    pub fn handle_probe_result(&mut self, probe: ProbeId, outcome: ProbeOutcome, now: Instant) {
        self.advance(now);
        self.engine.handle_result(probe, outcome, now);
        self.debug_check();
    }

    /// Time passed: probe deadlines, alert repeats, the end of
    /// `starting`/`reloading`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        if std::mem::take(&mut self.alerts_dirty) {
            self.alert_deadline = self.alerts.poll_timeout();
        }
        if self.alert_deadline.is_some_and(|t| t <= now) {
            self.alerts.handle_timeout(now);
            self.take_alerts();
            self.alerts_changed();
        }
        self.resources.engine.handle_timeout(now);
        let config = self.config.clone();
        self.resources.sync(&config, &self.roles, now);
        let changes = self.quorum.handle_timeout(now);
        self.quorum_changed(changes);
        self.debug_check();
    }

    /// An event of the quorum provider's shell (`[global.quorum]`): a
    /// notification, a connect, the connection lost. Without quorum every
    /// VRRP instance gets the fault [`QUORUM_FAULT`] (the resource groups
    /// stop first); quorate for the settle time, it is cleared.
    pub fn handle_quorum(&mut self, ev: halb_quorum::Event, now: Instant) {
        self.advance(now);
        let changes = self.quorum.handle_event(ev, now);
        self.quorum_changed(changes);
        self.debug_check();
    }

    /// The quorum's state (None: no `[global.quorum]`).
    pub fn quorum_status(&self) -> Option<halb_quorum::Status> {
        self.quorum.tracker().map(halb_quorum::Tracker::status)
    }

    fn quorum_changed(&mut self, changes: Vec<quorum::Change>) {
        if changes.is_empty() {
            return;
        }
        for c in changes {
            let (event, what) = if c.lost {
                (halb_alert::QuorumAlert::Lost, "quorum lost")
            } else {
                (halb_alert::QuorumAlert::Regained, "quorum regained")
            };
            let policy = self.quorum.tracker().map(|t| t.settings().no_quorum_policy);
            let then = match (c.lost, policy) {
                (_, Some(halb_quorum::NoQuorumPolicy::Ignore)) => {
                    "no_quorum_policy = \"ignore\": nothing changes"
                }
                (true, _) => "stopping the resource groups, then giving up every VRRP instance",
                (false, _) => "VRRP instances and resource groups may run here again",
            };
            let reason = format!("{what}: {}; {then}", c.reason);
            if c.lost {
                tracing::warn!("{reason}");
            } else {
                tracing::info!("{reason}");
            }
            self.alerts.handle_quorum(event, reason, self.now);
            self.take_alerts();
            self.alerts_changed();
        }
        let config = self.config.clone();
        self.quorum.sync(&config, false, &mut self.actions);
    }

    /// A VRRP instance changed state: its notify hooks run, and the IPVS
    /// sync daemon follows it if configured so.
    pub fn handle_vrrp_event(&mut self, ev: VrrpEvent, now: Instant) {
        self.advance(now);
        let same = self.roles.insert(ev.instance.clone(), ev.state) == Some(ev.state);
        self.resources.set_awaiting(
            &ev.instance,
            ev.awaiting_peer && ev.state == halb_vrrp::State::Master,
        );
        if !same {
            let what = format!("{} {}", ev.instance, hooks::word(ev.state));
            for argv in hooks_for(&self.config, &ev) {
                self.actions.push_back(Action::RunHook {
                    argv,
                    event: what.clone(),
                });
            }
            if self.follow_sync() {
                self.queue_table(ApplyReason::SyncRole);
            }
        }
        let config = self.config.clone();
        self.resources.sync(&config, &self.roles, now);
        self.debug_check();
    }

    /// A redundant heartbeat path of a VRRP instance changed (the VRRP
    /// shell logged it): a path that died is alerted, and so is its
    /// healing.
    pub fn handle_vrrp_path(&mut self, ev: VrrpPathEvent, now: Instant) {
        use halb_vrrp::PathState;
        self.advance(now);
        let key = (ev.instance.clone(), ev.interface.clone());
        let event = match ev.to {
            PathState::Dead => self
                .dead_paths
                .insert(key)
                .then_some(halb_alert::PathAlert::Dead),
            PathState::Alive => self
                .dead_paths
                .remove(&key)
                .then_some(halb_alert::PathAlert::Alive),
            PathState::Unknown => None,
        };
        if let Some(event) = event {
            let to = ev.peer.map(|p| format!(" to {p}")).unwrap_or_default();
            let reason = match event {
                halb_alert::PathAlert::Dead => format!(
                    "VRRP instance {}: path {}{to} dead (no advert over it for the master-down interval while another path carries them)",
                    ev.instance, ev.interface
                ),
                halb_alert::PathAlert::Alive => format!(
                    "VRRP instance {}: path {}{to} alive again",
                    ev.instance, ev.interface
                ),
            };
            self.alerts.handle_vrrp_path(
                halb_alert::PathTransition {
                    instance: ev.instance,
                    interface: ev.interface,
                    peer: ev.peer,
                    event,
                    reason,
                },
                now,
            );
            self.take_alerts();
            self.alerts_changed();
        }
        self.debug_check();
    }

    /// A sync peer's config digest was compared with ours
    /// (halb-sync's tracker): `in_sync` or not, `reason` as the log says
    /// it. The first difference is alerted, and so is the return to the
    /// same config after one; nothing is repeated.
    pub fn handle_config_sync(&mut self, peer: &str, in_sync: bool, reason: String, now: Instant) {
        self.advance(now);
        let event = if in_sync {
            self.drifted_peers
                .remove(peer)
                .then_some(halb_alert::SyncAlert::InSync)
        } else {
            self.drifted_peers
                .insert(peer.to_owned())
                .then_some(halb_alert::SyncAlert::Differs)
        };
        if let Some(event) = event {
            self.alerts.handle_config_sync(
                halb_alert::SyncTransition {
                    peer: peer.to_owned(),
                    event,
                    reason,
                },
                now,
            );
            self.take_alerts();
            self.alerts_changed();
        }
        self.debug_check();
    }

    /// A new, valid config (the shell read and validated it; a config
    /// that does not validate never reaches the director, so a rejected
    /// reload changes nothing). Returns what changes; the actions that
    /// carry it out are queued.
    pub fn handle_config(&mut self, new: Config, now: Instant) -> ReloadPlan {
        self.advance(now);
        let old = self.config.clone();
        let mut plan = ReloadPlan::default();
        if new.global.control_socket != old.global.control_socket {
            plan.at_restart.push("control_socket");
        }
        if new.global.control_socket_group != old.global.control_socket_group {
            plan.at_restart.push("control_socket_group");
        }
        if new.global.control_socket_read_group != old.global.control_socket_read_group {
            plan.at_restart.push("control_socket_read_group");
        }
        if new.global.http_listen != old.global.http_listen {
            plan.at_restart.push("http_listen");
        }
        if new.global.http_token != old.global.http_token {
            plan.at_restart.push("http_token");
        }
        if new.global.workers != old.global.workers {
            plan.at_restart.push("workers");
        }
        if new.global.check_concurrency != old.global.check_concurrency {
            plan.at_restart.push("check_concurrency");
        }
        if new.global.sync != old.global.sync {
            plan.at_restart.push("[global.sync]");
        }
        plan.changes = diff::describe(&old.to_table(), &new.to_table());
        if let Some(c) = describe_check_changes(&old, &new) {
            plan.changes.push(c);
        }
        if old.alerts != new.alerts {
            plan.changes.push("alerts: changed".to_owned());
        }
        if new.global.ipvs != old.global.ipvs {
            plan.changes.push("[global.ipvs] changed".into());
        }
        // VRRP is touched only when its config changed: a restart of an
        // instance re-runs its election.
        plan.vrrp = new.vrrp_instances != old.vrrp_instances
            || new.vrrp_sync_groups != old.vrrp_sync_groups;

        self.overrides.retain_in(&new);
        if new.resource_groups != old.resource_groups {
            plan.changes.extend(self.resources.reload(&new, now));
            for (instance, key) in self.resources.faults_of_removed(&new) {
                self.actions.push_back(Action::SetFault {
                    instance,
                    key,
                    faulty: false,
                });
            }
        }
        let set = self.index.set(&new);
        self.engine.handle_checks(set, now);
        self.set_alerts(&new, DaemonStatus::Reloading);
        let new = Arc::new(new);
        self.config = new.clone();
        self.actions
            .push_back(Action::SetGlobal(Box::new(new.global.clone())));
        if !self.follows_sync() {
            self.sync_role = None;
        }
        self.follow_sync();
        self.queue_table(ApplyReason::Reload);
        if plan.vrrp {
            self.actions.push_back(Action::ReloadVrrp(new.clone()));
            self.tracking.forget_sent();
            // The groups' faults go to the new VRRP too.
            for (instance, key) in self.resources.faults() {
                self.actions.push_back(Action::SetFault {
                    instance: instance.clone(),
                    key: key.clone(),
                    faulty: true,
                });
            }
        }
        // Standby and takeover hold for the instances of the new config
        // too.
        self.role_override
            .reload(&new, plan.vrrp, &mut self.actions);
        // So does the quorum fault; the settle time and the policy apply
        // at once.
        if self.quorum.reload(&new, now) {
            plan.at_restart.push("global.quorum");
        }
        self.quorum.sync(&new, plan.vrrp, &mut self.actions);
        self.tracking_due = true;
        self.resources.sync(&new, &self.roles, now);
        self.debug_check();
        plan
    }

    /// The daemon stops: alerts are `stopping`, and every real server
    /// that is up gets a down alert ("halb is stopping"): it leaves the
    /// table with this daemon (ldirectord mails the removals too).
    pub fn handle_stop(&mut self, now: Instant) {
        self.advance(now);
        self.alerts.handle_status(DaemonStatus::Stopping, None);
        for r in self.health_report() {
            if r.health != Health::Up {
                continue;
            }
            let t = Transition {
                service: r.service,
                real: r.real,
                from: Health::Up,
                to: Health::Down,
                reason: "halb is stopping".to_owned(),
            };
            self.alerts.handle_transition(t, now);
            self.take_alerts();
        }
        self.alerts_changed();
        self.debug_check();
    }

    /// The shell finished carrying out an [`Action::Apply`] for health at
    /// `now`: how long it took paces the next one.
    pub fn handle_applied(&mut self, now: Instant) {
        self.advance(now);
        if let Some(t) = self.last_health_apply {
            self.apply_cost = now.saturating_duration_since(t);
        }
        self.debug_check();
    }

    /// An operator's command.
    pub fn handle_command(&mut self, command: Command, now: Instant) -> Result<(), CommandError> {
        self.advance(now);
        let r = match command {
            Command::Resource(c) => self
                .resources
                .engine
                .handle_command(c, now)
                .map_err(CommandError::Resource),
            Command::Real {
                service,
                real,
                action,
            } => match overrides::resolve(&self.config, &service, &real) {
                Ok((key, addr)) => {
                    if self.overrides.set(key, addr, action) {
                        self.queue_table(ApplyReason::Operator);
                    }
                    Ok(())
                }
                Err(e) => Err(CommandError::Target(e)),
            },
            Command::Standby(true) => {
                let config = self.config.clone();
                self.role_override
                    .set_standby(true, &config, &mut self.actions);
                Ok(())
            }
            Command::Standby(false) => {
                let config = self.config.clone();
                self.role_override.online(&config, &mut self.actions);
                Ok(())
            }
            Command::Reset => {
                if self.overrides.clear() > 0 {
                    self.queue_table(ApplyReason::Operator);
                }
                let config = self.config.clone();
                self.role_override.online(&config, &mut self.actions);
                Ok(())
            }
            Command::Takeover(instance) => {
                let config = self.config.clone();
                self.role_override
                    .take_over(instance.as_deref(), &config, &mut self.actions)
                    .map(|_| ())
                    .map_err(CommandError::Takeover)
            }
        };
        self.debug_check();
        r
    }

    /// The next thing for the shell to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        loop {
            // Held faults whose groups have stopped here go out first
            // (see resources.rs, "stop first, then release").
            let config = self.config.clone();
            for (instance, on) in self.resources.releasing_changes(&config, &self.roles) {
                self.actions
                    .push_back(Action::SetReleasing { instance, on });
            }
            for (instance, key) in self.resources.ripe(&config, &self.roles).into_iter().rev() {
                self.actions.push_front(Action::SetFault {
                    instance,
                    key,
                    faulty: true,
                });
            }
            if let Some(a) = self.actions.pop_front() {
                if let Action::SetFault {
                    instance,
                    key,
                    faulty,
                } = &a
                {
                    if *faulty && self.resources.must_hold(&config, &self.roles, instance) {
                        self.resources.hold(instance.clone(), key.clone());
                        self.resources.sync(&config, &self.roles, self.now);
                        continue;
                    }
                    if !*faulty && self.resources.unhold(instance, key) {
                        self.resources.sync(&config, &self.roles, self.now);
                    }
                }
                return Some(a);
            }
            if let Some(a) = self.engine.poll_action() {
                match a {
                    halb_health::Action::StartProbe { probe, spec } => {
                        return Some(Action::StartProbe { probe, spec })
                    }
                    halb_health::Action::Transition {
                        check,
                        from,
                        to,
                        reason,
                    } => self.on_transition(check, from, to, reason),
                    halb_health::Action::Weight { check, .. } => {
                        if matches!(self.index.owner(check), Some(Owner::Real { .. })) {
                            self.table_due = true;
                        }
                    }
                }
                continue;
            }
            if let Some(a) = self.resources.engine.poll_action() {
                match a {
                    halb_resource::Action::Run { .. } => return Some(Action::RunAgent(a)),
                    halb_resource::Action::Event(e) => {
                        if let Some(t) = resource_alert(&self.config, &e) {
                            self.alerts.handle_resource(t, self.now);
                            self.take_alerts();
                            self.alerts_changed();
                        }
                        return Some(Action::ResourceEvent(e));
                    }
                    halb_resource::Action::GroupReleased { group } => {
                        return Some(Action::ResourceReleased { group })
                    }
                    halb_resource::Action::GiveUp { group, .. } => {
                        let config = self.config.clone();
                        for (instance, key) in self.resources.fault(&config, &group, true) {
                            self.actions.push_back(Action::SetFault {
                                instance,
                                key,
                                faulty: true,
                            });
                        }
                    }
                    halb_resource::Action::BanLifted { group } => {
                        let config = self.config.clone();
                        for (instance, key) in self.resources.fault(&config, &group, false) {
                            self.actions.push_back(Action::SetFault {
                                instance,
                                key,
                                faulty: false,
                            });
                        }
                    }
                }
                continue;
            }
            if self.table_due {
                if self.health_apply_at() > self.now {
                    // Coalesced with what follows (see APPLY_COALESCE).
                    return None;
                }
                self.table_due = false;
                self.last_health_apply = Some(self.now);
                return Some(Action::Apply {
                    table: self.table(),
                    reason: ApplyReason::Health,
                });
            }
            if std::mem::take(&mut self.tracking_due) {
                let desired = tracking::desired(&self.config, &self.index, &self.engine);
                self.tracking.send(&self.config, desired, &mut self.actions);
                if self.actions.is_empty() {
                    return None;
                }
                continue;
            }
            return None;
        }
    }

    /// When [`Director::handle_timeout`] is next due.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if !self.actions.is_empty() {
            return Some(self.now);
        }
        // Tracking follows the table: both wait for a coalesced table.
        if self.table_due {
            return Some(self.health_apply_at().max(self.now));
        }
        if self.tracking_due {
            return Some(self.now);
        }
        if std::mem::take(&mut self.alerts_dirty) {
            self.alert_deadline = self.alerts.poll_timeout();
        }
        [
            self.engine.poll_timeout(),
            self.alert_deadline,
            self.resources.poll_timeout(&self.config, self.now),
            self.quorum.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The running config.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The effective table now (see [`effective_table`]).
    pub fn table(&self) -> Table {
        let health = |service, real| {
            let (id, _) = self.index.real(service, real)?;
            let st = self.engine.status(id)?;
            Some((st.health, st.weight))
        };
        let mut table = effective_table(&self.config, health);
        self.overrides.apply(&mut table, |service, real| {
            matches!(health(service, real), Some((Health::Down, _)))
        });
        table
    }

    /// Operators' real-server overrides in force.
    pub fn overrides(&self) -> &overrides::Overrides {
        &self.overrides
    }

    /// Overrides saved by a previous run (before the first table is
    /// applied): those the config still has are in force.
    pub fn restore_overrides(&mut self, saved: &[overrides::Saved]) {
        self.overrides = overrides::Overrides::from_saved(saved, &self.config);
    }

    /// The IPVS sync daemon's role, when `[global.ipvs.sync_daemon]` is
    /// set.
    pub fn sync_role(&self) -> Option<SyncRole> {
        self.sync_role
    }

    /// Real-server health transitions since the start.
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// Every VRRP instance's latest state.
    pub fn roles(&self) -> &BTreeMap<String, halb_vrrp::State> {
        &self.roles
    }

    /// Checks and distinct probes (after sharing) in the engine.
    pub fn check_counts(&self) -> (usize, usize) {
        (self.engine.checks(), self.engine.probes())
    }

    /// Health of every checked real server, in config order, from the
    /// engine's own state.
    pub fn health_report(&self) -> Vec<RealHealth> {
        let mut out = Vec::new();
        for vs in &self.config.services {
            let key = vs.key();
            for r in &vs.reals {
                let Some((id, i)) = self.index.real(key, r.addr) else {
                    continue;
                };
                let (Some(st), Some(check)) = (self.engine.status(id), self.config.checks.get(i))
                else {
                    continue;
                };
                out.push(RealHealth {
                    service: vs.name.clone(),
                    protocol: vs.protocol,
                    listen: vs.listen,
                    real: r.addr,
                    health: st.health,
                    reason: st.last_reason.clone(),
                    transitions: st.transitions,
                    probes: st.successes + st.failures,
                    failures: st.failures,
                    last_duration_ms: st
                        .last_duration
                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    configured_weight: r.weight,
                    dynamic_weight: st.weight,
                    on_down: check.on_down.unwrap_or(vs.on_down),
                    check: describe(&check.spec),
                });
            }
        }
        out
    }

    /// Cross-indexed state agrees: every numbered check is in the engine,
    /// every configured check is numbered, tracking only names configured
    /// instances. Debug builds run it after every input.
    pub fn check_invariants(&self) {
        self.index.check_invariants();
        self.engine.check_invariants();
        self.alerts.check_invariants();
        self.resources.check_invariants();
        self.quorum.check_invariants();
        self.role_override.check();
        assert_eq!(
            self.index.len(),
            self.engine.checks(),
            "the index numbers exactly the engine's checks"
        );
        for id in self.index.ids() {
            assert!(self.engine.status(id).is_some(), "{id:?} not in the engine");
        }
        for c in &self.config.checks {
            assert!(
                self.index.real(c.service, c.real).is_some(),
                "check of {} unnumbered",
                c.real
            );
        }
        self.tracking.check_invariants(&self.config);
        if self.sync_role.is_some() {
            assert!(
                self.follows_sync(),
                "a sync role without a followed instance"
            );
        }
    }

    /// The alert policy changed: its next deadline may have moved.
    fn alerts_changed(&mut self) {
        self.alerts_dirty = true;
    }

    /// After each input in debug builds: the whole sweep while the
    /// director is small, then every ⌈checks/256⌉-th input (a sweep is
    /// linear in the checks; the engine and the policy sweep themselves).
    fn debug_check(&mut self) {
        self.inputs += 1;
        let every = (self.index.len() / 256).max(1) as u64;
        if cfg!(debug_assertions) && self.inputs.is_multiple_of(every) {
            self.check_invariants();
        }
    }

    fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.engine.handle_timeout(self.now);
    }

    /// The alerts the policy decided, in order.
    fn take_alerts(&mut self) {
        while let Some(a) = self.alerts.poll_action() {
            self.actions.push_back(Action::Alert(a));
        }
    }

    /// When a table for health changes may next be handed out: at least
    /// [`APPLY_COALESCE`] after the last one, and long enough that applying
    /// takes at most a fifth of the time (a table of 10,000 real servers
    /// costs milliseconds; probes must not wait behind a stream of them).
    fn health_apply_at(&self) -> Instant {
        let window = APPLY_COALESCE.max(self.apply_cost * 5).min(MAX_COALESCE);
        self.last_health_apply.map_or(self.now, |t| t + window)
    }

    fn queue_table(&mut self, reason: ApplyReason) {
        self.table_due = false;
        let table = self.table();
        self.actions.push_back(Action::Apply { table, reason });
    }

    /// A check changed state: for a real server, log, alert and re-apply
    /// the table; for a tracker, log; tracking follows either way.
    fn on_transition(&mut self, check: CheckId, from: Health, to: Health, reason: String) {
        self.tracking_due = true;
        match self.index.owner(check).cloned() {
            Some(Owner::Real { service, real }) => {
                self.transitions += 1;
                self.table_due = true;
                let name = self
                    .config
                    .services
                    .iter()
                    .find(|s| s.key() == service)
                    .map_or_else(|| service.to_string(), |s| s.name.clone());
                match to {
                    Health::Up => tracing::info!(
                        "health: {name}: real server {real} is up ({reason}; was {from})"
                    ),
                    Health::Down => tracing::warn!(
                        "health: {name}: real server {real} is down ({reason}; was {from})"
                    ),
                }
                let t = Transition {
                    service: name,
                    real,
                    from,
                    to,
                    reason,
                };
                self.alerts.handle_transition(t, self.now);
                self.take_alerts();
                self.alerts_changed();
            }
            Some(Owner::Script { instance, name }) => match to {
                Health::Up => {
                    tracing::info!(%instance, script = %name, "track_script succeeds again ({reason})")
                }
                Health::Down => {
                    tracing::warn!(%instance, script = %name, "track_script fails ({reason})")
                }
            },
            Some(Owner::Ping { instance, host }) => match to {
                Health::Up => tracing::info!(%instance, %host, "ping node answers again"),
                Health::Down => {
                    tracing::warn!(%instance, %host, "ping node does not answer ({reason})")
                }
            },
            None => {}
        }
    }

    /// Gives the alert policy `config`'s settings; `status` lasts for the
    /// first probe round.
    fn set_alerts(&mut self, config: &Config, status: DaemonStatus) {
        let now = self.now;
        self.alerts.handle_specs(config.alerts.iter().cloned(), now);
        self.alerts
            .handle_resource_specs(config.resource_alerts.iter().cloned());
        self.alerts.handle_vrrp_specs(config.vrrp_alert.clone());
        // Built only when some real server is down (a reload of 100,000
        // real servers should not hash them all for nothing).
        let mut present: Option<HashSet<(&str, SocketAddr)>> = None;
        self.alerts.retain(|s, r| {
            present
                .get_or_insert_with(|| {
                    config
                        .services
                        .iter()
                        .flat_map(|s| s.reals.iter().map(move |r| (s.name.as_str(), r.addr)))
                        .collect()
                })
                .contains(&(s, r))
        });
        self.alerts
            .handle_status(status, Some(now + first_round(config)));
        self.alerts_changed();
    }

    /// The instance `[global.ipvs.sync_daemon] vrrp_instance` names.
    fn followed(&self) -> Option<&str> {
        self.config
            .global
            .ipvs
            .sync_daemon
            .as_ref()
            .and_then(|d| d.follow.as_deref())
    }

    fn follows_sync(&self) -> bool {
        self.followed().is_some()
    }

    /// The sync daemon is master while the followed instance is master,
    /// backup otherwise (keepalived's `lvs_sync_daemon`), so the director
    /// that takes over already knows the connections. Queues the new role
    /// and returns true when it changed (a table must follow).
    fn follow_sync(&mut self) -> bool {
        let Some(name) = self.followed().map(str::to_owned) else {
            return false;
        };
        let state = self.roles.get(&name).copied();
        let role = match state {
            Some(halb_vrrp::State::Master) => SyncRole::Master,
            _ => SyncRole::Backup,
        };
        if self.sync_role == Some(role) {
            return false;
        }
        self.sync_role = Some(role);
        tracing::info!("ipvs: VRRP instance {name} is {state:?}: sync daemon becomes {role:?}");
        self.actions.push_back(Action::SetSyncRole(role));
        true
    }
}

#[cfg(test)]
mod tests;
