//! VRRP tracking, keepalived's semantics: each tracker of an instance
//! (`track_service`, `track_script`, `track_ping`) either lowers or
//! raises its priority by a weight or, with weight 0, puts it in Fault.
//! The desired deltas and faults are a pure function of the config and
//! the health engine's state; [`Tracking`] remembers what the VRRP shell
//! was told and sends only what changed.

use crate::checks::CheckIndex;
use crate::Action;
use halb_config::Config;
use halb_health::{Engine, Health};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What tracking wants: per instance, the summed priority delta and the
/// set fault keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub deltas: BTreeMap<String, i32>,
    pub faults: BTreeSet<(String, String)>,
}

/// The priority change of a weighted tracker (keepalived's semantics):
/// a negative weight lowers the priority by |weight| while failing; a
/// positive one raises it by weight while succeeding.
pub fn tracked_delta(weight: i32, failing: bool) -> i32 {
    match (weight < 0, failing) {
        (true, true) | (false, false) => weight,
        _ => 0,
    }
}

impl Desired {
    fn report(&mut self, instance: &str, key: String, weight: i32, failing: bool) {
        if weight == 0 {
            if failing {
                self.faults.insert((instance.to_owned(), key));
            }
        } else {
            *self.deltas.entry(instance.to_owned()).or_default() += tracked_delta(weight, failing);
        }
    }
}

/// The fault key of a `track_service`.
pub fn service_key(service: &str) -> String {
    format!("service {service} down")
}

/// The fault key of a `track_script`.
pub fn script_key(name: &str) -> String {
    format!("script {name} failing")
}

/// The fault key of `track_ping`.
pub const PING_KEY: &str = "ping nodes unreachable";

/// What tracking wants now. `track_service`: a service all of whose real
/// servers are checked and down; `track_script`: its check is down;
/// `track_ping`: every ping node's check is down (heartbeat's ipfail:
/// always a Fault).
pub fn desired(config: &Config, index: &CheckIndex, engine: &Engine) -> Desired {
    let mut out = Desired::default();
    let down = |id| engine.health(id) == Some(Health::Down);
    for v in &config.vrrp_instances {
        out.deltas.entry(v.name.clone()).or_default();
        for t in &v.track_service {
            let Some(vs) = config.services.iter().find(|s| s.name == t.service) else {
                continue;
            };
            let key = vs.key();
            let failing = !vs.reals.is_empty()
                && vs
                    .reals
                    .iter()
                    .all(|r| index.real(key, r.addr).is_some_and(|(id, _)| down(id)));
            out.report(&v.name, service_key(&t.service), t.weight, failing);
        }
        for s in &v.track_script {
            let failing = index.script(&v.name, &s.name).is_none_or(down);
            out.report(&v.name, script_key(&s.name), s.weight, failing);
        }
        if v.track_ping.is_some() {
            let pings = index.pings(&v.name);
            let failing = !pings.is_empty() && pings.iter().all(|id| down(*id));
            out.report(&v.name, PING_KEY.to_owned(), 0, failing);
        }
    }
    out
}

/// What the VRRP shell was told.
#[derive(Debug, Default)]
pub struct Tracking {
    sent: Desired,
    /// VRRP was restarted: everything is sent again.
    resend: bool,
}

impl Tracking {
    /// VRRP restarts: its instances forget what they were told (a
    /// recreated instance starts at delta 0 with no faults), so the next
    /// [`Tracking::send`] sends everything again.
    pub fn forget_sent(&mut self) {
        self.resend = true;
    }

    /// Queues the commands that bring VRRP from what it was told to
    /// `desired`.
    pub fn send(&mut self, config: &Config, desired: Desired, out: &mut VecDeque<Action>) {
        let resend = std::mem::take(&mut self.resend);
        for (instance, delta) in &desired.deltas {
            let was = self.sent.deltas.get(instance).copied().unwrap_or(0);
            if resend || was != *delta {
                out.push_back(Action::SetPriorityDelta {
                    instance: instance.clone(),
                    delta: *delta,
                });
            }
        }
        let configured = |i: &str| config.vrrp_instances.iter().any(|v| v.name == i);
        for (instance, key) in self.sent.faults.difference(&desired.faults) {
            if configured(instance) {
                out.push_back(Action::SetFault {
                    instance: instance.clone(),
                    key: key.clone(),
                    faulty: false,
                });
            }
        }
        for f in &desired.faults {
            if resend || !self.sent.faults.contains(f) {
                out.push_back(Action::SetFault {
                    instance: f.0.clone(),
                    key: f.1.clone(),
                    faulty: true,
                });
            }
        }
        self.sent = desired;
    }

    /// What was sent names only configured instances, or instances whose
    /// removal VRRP has not been told of yet.
    pub fn check_invariants(&self, config: &Config) {
        if self.resend {
            return;
        }
        for instance in self.sent.deltas.keys() {
            assert!(
                config.vrrp_instances.iter().any(|v| &v.name == instance),
                "a delta sent for {instance}, which is not configured"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// keepalived: `weight -20` lowers the priority by 20 while failing,
    /// `weight 20` raises it by 20 while the check succeeds.
    #[test]
    fn weights_as_keepalived() {
        assert_eq!(tracked_delta(-20, true), -20);
        assert_eq!(tracked_delta(-20, false), 0);
        assert_eq!(tracked_delta(20, false), 20);
        assert_eq!(tracked_delta(20, true), 0);
    }
}
