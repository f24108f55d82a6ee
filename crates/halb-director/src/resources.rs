//! Resource groups in the director (issue 17): the resource engine
//! (`halb_resource::Engine`, sans-IO) fed the roles of the VRRP instances
//! and sync groups the groups follow, and its give-ups turned into VRRP
//! faults so that the peer takes over.
//!
//! - **Roles.** A group following an instance is active where that
//!   instance is MASTER; one following a sync group where every instance
//!   of the group is MASTER. Only changes reach the engine.
//! - **Start-up grace.** A restarted halb is BACKUP for a master-down
//!   interval before it can be MASTER again; had it declared its groups
//!   inactive at once, it would stop the members its previous life left
//!   running on the master, only to start them again seconds later. So a
//!   followed name is declared inactive only once it has been non-MASTER
//!   past the start-up grace (the longest master-down interval of the
//!   followed instances, 3 × advert + 1 s); MASTER is sent at once. In the
//!   meantime the start-up probes find what runs, and nothing is started
//!   or stopped.
//! - **Giving up.** `GiveUp` (migration threshold, a fatal start, a hard
//!   error, `on_fail = standby`) sets the VRRP fault `resource group
//!   NAME` on every followed instance: the instance goes to FAULT, the
//!   peer takes over. `BanLifted` clears it. The faults are kept here and
//!   sent again when VRRP restarts (a reload of its config).
//! - **Stop first, then release** (a planned move: `halb standby`, a
//!   give-up, a tracking fault). A fault for an instance that is MASTER
//!   here while a group that follows it still runs here is *held*: the
//!   groups of that instance are declared inactive at once and stop (in
//!   reverse), and the fault goes to VRRP — the priority-0 advert, the
//!   VIPs removed, the peer starting its copy — only once nothing of them
//!   runs here (`Engine::is_stopped_here`). A stop that fails blocks the
//!   group, and the fault stays held: the VIP stays here rather than let
//!   the peer start what may still run (heartbeat's order; Pacemaker would
//!   fence). SIGTERM keeps the same order in the shell.

use halb_config::Config;
use halb_resource::{Engine, Follows, GroupSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The director's part of resource groups.
#[derive(Debug)]
pub struct Resources {
    pub(crate) engine: Engine,
    /// What the engine was last told, by followed name.
    sent: BTreeMap<String, bool>,
    /// Until then a followed name is not declared inactive.
    grace_until: Instant,
    /// VRRP faults set for groups given up: (instance, key).
    faults: BTreeSet<(String, String)>,
    /// Faults waiting for the groups of their instance to stop here:
    /// (instance, key).
    held: BTreeSet<(String, String)>,
    /// MASTER instances whose previous master may still run the groups.
    awaiting: BTreeSet<String>,
    /// Non-MASTER instances whose groups still stop here (VRRP sends
    /// releasing adverts for them).
    releasing: BTreeSet<String>,
}

/// The VRRP fault key for a group given up.
pub fn fault_key(group: &str) -> String {
    format!("resource group {group}")
}

impl Resources {
    pub fn new(config: &Config, now: Instant) -> Resources {
        Resources {
            engine: Engine::new(config.resource_groups.clone()),
            sent: BTreeMap::new(),
            grace_until: now + start_grace(config),
            faults: BTreeSet::new(),
            held: BTreeSet::new(),
            awaiting: BTreeSet::new(),
            releasing: BTreeSet::new(),
        }
    }

    /// Whether any group is configured.
    pub fn is_empty(&self) -> bool {
        self.engine.groups().next().is_none()
    }

    /// Tell the engine about every followed name whose activity changed.
    pub fn sync(
        &mut self,
        config: &Config,
        roles: &BTreeMap<String, halb_vrrp::State>,
        now: Instant,
    ) {
        let names: BTreeSet<(String, bool)> = config
            .resource_groups
            .iter()
            .map(|g| {
                let held = instances_of(config, &g.follows)
                    .iter()
                    .any(|i| self.held.iter().any(|(h, _)| h == i) || self.awaiting.contains(i));
                (
                    g.follows.name().to_owned(),
                    active(config, roles, &g.follows) && !held,
                )
            })
            .collect();
        for (name, on) in names {
            if self.sent.get(&name) == Some(&on) {
                continue;
            }
            if !on && now < self.grace_until && !self.sent.contains_key(&name) {
                continue;
            }
            self.engine.handle_role(&name, on, now);
            self.sent.insert(name, on);
        }
    }

    /// The daemon stops: every group is stopped here (in reverse), as on
    /// losing the role.
    pub fn stop_all(&mut self, config: &Config, now: Instant) {
        self.grace_until = now;
        let names: BTreeSet<String> = config
            .resource_groups
            .iter()
            .map(|g| g.follows.name().to_owned())
            .collect();
        for name in names {
            self.engine.handle_role(&name, false, now);
            self.sent.insert(name, false);
        }
    }

    /// A new config's groups: the engine's change lines. The roles are
    /// sent again (a changed group starts from scratch).
    pub fn reload(&mut self, new: &Config, now: Instant) -> Vec<String> {
        let lines = self.engine.handle_groups(new.resource_groups.clone(), now);
        self.sent.clear();
        self.grace_until = self.grace_until.min(now);
        // Faults of groups that are gone are cleared by the caller's
        // `faults_of_removed`.
        lines
    }

    /// The start-up grace's end, while it matters (a followed name still
    /// waits for it).
    pub fn poll_timeout(&self, config: &Config, now: Instant) -> Option<Instant> {
        let waiting = self.grace_until > now
            && config
                .resource_groups
                .iter()
                .any(|g| !self.sent.contains_key(g.follows.name()));
        let grace = waiting.then_some(self.grace_until);
        [grace, self.engine.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// `group` was given up (`faulty`) or may come back: the faults to
    /// set on VRRP, remembered for a VRRP restart.
    pub fn fault(&mut self, config: &Config, group: &str, faulty: bool) -> Vec<(String, String)> {
        let key = fault_key(group);
        let instances = config
            .resource_groups
            .iter()
            .find(|g| g.name == group)
            .map(|g| instances_of(config, &g.follows))
            .unwrap_or_default();
        for i in &instances {
            if faulty {
                self.faults.insert((i.clone(), key.clone()));
            } else {
                self.faults.remove(&(i.clone(), key.clone()));
            }
        }
        instances.into_iter().map(|i| (i, key.clone())).collect()
    }

    /// Whether a fault for `instance` must be held: it is MASTER here and
    /// a group that follows it has not stopped here.
    pub fn must_hold(
        &self,
        config: &Config,
        roles: &BTreeMap<String, halb_vrrp::State>,
        instance: &str,
    ) -> bool {
        roles.get(instance) == Some(&halb_vrrp::State::Master)
            && self
                .groups_on(config, instance)
                .any(|g| !self.engine.is_stopped_here(g))
    }

    fn groups_on<'a>(
        &self,
        config: &'a Config,
        instance: &'a str,
    ) -> impl Iterator<Item = &'a str> {
        config
            .resource_groups
            .iter()
            .filter(move |g| {
                instances_of(config, &g.follows)
                    .iter()
                    .any(|i| i == instance)
            })
            .map(|g| g.name.as_str())
    }

    /// Hold a fault (see [`Resources::must_hold`]); the caller syncs the
    /// roles so that the groups stop.
    pub fn hold(&mut self, instance: String, key: String) {
        self.held.insert((instance, key));
    }

    /// A held fault is cleared before it went out: true when it was held.
    pub fn unhold(&mut self, instance: &str, key: &str) -> bool {
        self.held.remove(&(instance.to_owned(), key.to_owned()))
    }

    /// The held faults whose groups have stopped here (or whose instance
    /// is no longer MASTER or no longer configured): to send now.
    pub fn ripe(
        &mut self,
        config: &Config,
        roles: &BTreeMap<String, halb_vrrp::State>,
    ) -> Vec<(String, String)> {
        if self.held.is_empty() {
            return Vec::new();
        }
        let ripe: Vec<(String, String)> = self
            .held
            .iter()
            .filter(|(i, _)| !self.must_hold(config, roles, i))
            .cloned()
            .collect();
        for f in &ripe {
            self.held.remove(f);
        }
        ripe
    }

    /// `instance` is MASTER but awaits its peer's release (`on`), or not.
    pub fn set_awaiting(&mut self, instance: &str, on: bool) {
        if on {
            self.awaiting.insert(instance.to_owned());
        } else {
            self.awaiting.remove(instance);
        }
    }

    /// The instances whose releasing adverts must start (`true`) or stop:
    /// groups that follow them still stop here while they are not MASTER.
    pub fn releasing_changes(
        &mut self,
        config: &Config,
        roles: &BTreeMap<String, halb_vrrp::State>,
    ) -> Vec<(String, bool)> {
        if config.resource_groups.is_empty() && self.releasing.is_empty() {
            return Vec::new();
        }
        let want: BTreeSet<String> = config
            .vrrp_instances
            .iter()
            .map(|i| i.name.as_str())
            .filter(|i| {
                roles
                    .get(*i)
                    .is_some_and(|s| *s != halb_vrrp::State::Master)
            })
            .filter(|i| {
                self.groups_on(config, i)
                    .any(|g| !self.engine.is_stopped_here(g))
            })
            .map(str::to_owned)
            .collect();
        let mut out: Vec<(String, bool)> = want
            .difference(&self.releasing)
            .map(|i| (i.clone(), true))
            .collect();
        out.extend(self.releasing.difference(&want).map(|i| (i.clone(), false)));
        self.releasing = want;
        out
    }

    /// The held faults, for `halb list` and the log.
    pub fn held(&self) -> impl Iterator<Item = &(String, String)> {
        self.held.iter()
    }

    /// The groups a held fault waits for.
    pub fn held_for(&self, config: &Config, instance: &str) -> Vec<String> {
        self.groups_on(config, instance)
            .filter(|g| !self.engine.is_stopped_here(g))
            .map(str::to_owned)
            .collect()
    }

    /// The faults set now (sent again after VRRP restarts).
    pub fn faults(&self) -> impl Iterator<Item = &(String, String)> {
        self.faults.iter()
    }

    /// Faults of groups the new config no longer has: to clear.
    pub fn faults_of_removed(&mut self, new: &Config) -> Vec<(String, String)> {
        let keep: BTreeSet<String> = new
            .resource_groups
            .iter()
            .map(|g| fault_key(&g.name))
            .collect();
        let gone: Vec<_> = self
            .faults
            .iter()
            .filter(|(_, k)| !keep.contains(k))
            .cloned()
            .collect();
        for f in &gone {
            self.faults.remove(f);
        }
        gone
    }

    pub fn check_invariants(&self) {
        self.engine.check_invariants();
    }
}

/// Whether the groups following `follows` may run here.
pub fn active(
    config: &Config,
    roles: &BTreeMap<String, halb_vrrp::State>,
    follows: &Follows,
) -> bool {
    let master = |i: &str| roles.get(i) == Some(&halb_vrrp::State::Master);
    match follows {
        Follows::Instance(i) => master(i),
        Follows::SyncGroup(g) => {
            let inst = instances_of(config, follows);
            !inst.is_empty()
                && inst.iter().all(|i| master(i))
                && config.vrrp_sync_groups.iter().any(|s| &s.name == g)
        }
    }
}

/// The VRRP instances behind `follows`.
pub fn instances_of(config: &Config, follows: &Follows) -> Vec<String> {
    match follows {
        Follows::Instance(i) => vec![i.clone()],
        Follows::SyncGroup(g) => config
            .vrrp_sync_groups
            .iter()
            .find(|s| &s.name == g)
            .map(|s| s.instances.clone())
            .unwrap_or_default(),
    }
}

/// The start-up grace: the longest master-down interval (3 × advert +
/// skew, at most 1 s more) of the instances the groups follow.
pub fn start_grace(config: &Config) -> Duration {
    let followed: BTreeSet<String> = config
        .resource_groups
        .iter()
        .flat_map(|g: &GroupSpec| instances_of(config, &g.follows))
        .collect();
    config
        .vrrp_instances
        .iter()
        .filter(|i| followed.contains(&i.name))
        .map(|i| 3 * i.advert_interval + Duration::from_secs(1))
        .max()
        .unwrap_or(Duration::ZERO)
}
