//! The alert policy, sans-IO: fed real-server transitions, resource
//! events (issue 17), the daemon's
//! status and `now`; emits "send this alert there" [`Action`]s and its next
//! deadline (for repeated mails). No clock, no socket.
//!
//! Semantics follow ldirectord's e-mail alerts:
//!
//! - every transition of a real server of a service with alerts is sent to
//!   the service's webhook (always) and mailed to its recipients when the
//!   daemon's status is in `email_alert_status` (`emailalertstatus`);
//! - while a real server stays down, the "down" mail is repeated every
//!   `email_alert_freq` (`emailalertfreq`; zero: never), from the time it
//!   went down, again subject to the status filter at the time of each
//!   repeat; its "up" ends the repeats;
//! - the status is `starting` (or `reloading`) until a deadline the daemon
//!   gives (its first probe round), then `running`.
//!
//! Driving it (the convention of every sans-IO core of the workspace:
//! `handle_*` inputs, [`Policy::poll_action`] outputs, [`Policy::poll_timeout`]
//! the next deadline):
//!
//! ```text
//! policy.handle_transition(t, now)                 // a real server flipped
//! policy.handle_timeout(now)                       // at policy.poll_timeout()
//! policy.handle_specs(.., now)                     // start, reload
//! policy.handle_status(status, until)              // start, reload, stop
//! while let Some(action) = policy.poll_action() { /* send it */ }
//! ```
//!
//! The daemon's status and the alert settings are inputs too (the daemon
//! starts, reloads, stops), hence `handle_status` and `handle_specs`;
//! [`Policy::retain`] stays a plain pruning call, and queries
//! ([`Policy::status`], [`Policy::down_count`]) change nothing.
//!
//! **Invariants.** [`Policy::check_invariants`] asserts the policy's
//! cross-indexed state (a down real server is repeating exactly when its
//! service's settings say so, and not before it went down); debug builds run
//! it after every input.

use crate::spec::{AlertSpec, DaemonStatus, EmailSpec, WebhookSpec};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use halb_health::Health;

/// A real server of a virtual service that changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The virtual service's name.
    pub service: String,
    pub real: SocketAddr,
    pub from: Health,
    pub to: Health,
    /// The probe's reason (`connection refused`, `HTTP 200`).
    pub reason: String,
}

/// What an alert is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A real server of a virtual service changed state.
    RealServer {
        service: String,
        real: SocketAddr,
        from: Health,
        to: Health,
    },
    /// A resource group (`member: None`) or one of its members.
    Resource {
        group: String,
        member: Option<String>,
        event: ResourceAlert,
    },
    /// A redundant heartbeat path of a VRRP instance died or healed.
    VrrpPath {
        instance: String,
        /// The path's interface.
        interface: String,
        /// The peer's address on it, if known.
        peer: Option<std::net::IpAddr>,
        event: PathAlert,
    },
    /// The running config of a peer director differs from ours
    /// (`[global.sync]`), or is equal again.
    ConfigSync { peer: String, event: SyncAlert },
    /// This director's partition lost or regained quorum (`[global.quorum]`).
    Quorum { event: QuorumAlert },
}

/// The config sync events that are alerted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncAlert {
    /// The peer's config digest differs from ours.
    Differs,
    /// It is equal again.
    InSync,
}

impl SyncAlert {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncAlert::Differs => "differs",
            SyncAlert::InSync => "in_sync",
        }
    }
}

/// A config sync event to alert ([`Policy::handle_config_sync`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncTransition {
    pub peer: String,
    pub event: SyncAlert,
    /// The event as the log says it.
    pub reason: String,
}

/// The quorum events that are alerted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuorumAlert {
    /// Not quorate (or the provider lost): the groups and VIPs are given up.
    Lost,
    /// Quorate again for the settle time: groups and VIPs may be held.
    Regained,
}

impl QuorumAlert {
    pub fn as_str(self) -> &'static str {
        match self {
            QuorumAlert::Lost => "lost",
            QuorumAlert::Regained => "regained",
        }
    }
}

/// The path events that are alerted: a path died (silent for the
/// master-down interval while another one carries the adverts), or a
/// path reported dead carries them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathAlert {
    Dead,
    Alive,
}

impl PathAlert {
    pub fn as_str(self) -> &'static str {
        match self {
            PathAlert::Dead => "dead",
            PathAlert::Alive => "alive",
        }
    }
}

/// A path event to alert ([`Policy::handle_vrrp_path`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTransition {
    pub instance: String,
    pub interface: String,
    pub peer: Option<std::net::IpAddr>,
    pub event: PathAlert,
    /// The event as the log says it.
    pub reason: String,
}

/// The resource events that are alerted (issue 17): the rest (stopped,
/// adopted, monitors that pass) only go to the log and the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceAlert {
    /// A member's probe, start, monitor or stop failed.
    Failed,
    /// A member was started again after a failure.
    Restarted,
    /// The group was given up here (migration threshold, a fatal start,
    /// `on_fail`): it moves to the peer.
    GivenUp,
    /// The group's last member started: the group runs on this director.
    Started,
    /// A stop failed: nothing more is done for the group here.
    Blocked,
}

impl ResourceAlert {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceAlert::Failed => "failed",
            ResourceAlert::Restarted => "restarted",
            ResourceAlert::GivenUp => "given_up",
            ResourceAlert::Started => "started",
            ResourceAlert::Blocked => "blocked",
        }
    }
}

/// A resource event to alert ([`Policy::handle_resource`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceTransition {
    pub group: String,
    pub member: Option<String>,
    pub event: ResourceAlert,
    /// The event as the log says it.
    pub reason: String,
}

/// What one alert says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub subject: Subject,
    pub reason: String,
    /// The daemon's status when the alert was decided.
    pub status: DaemonStatus,
    /// 0 for the transition itself; 1, 2, … for repeated "down" mails.
    pub repeat: u32,
    /// For an "up" alert or a repeat: how long the real server has been
    /// down (when the policy saw it go down).
    pub down_for: Option<Duration>,
}

/// Where an alert goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    Webhook(Arc<WebhookSpec>),
    Email(Arc<EmailSpec>),
}

/// Send `alert` to `sink`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub alert: Alert,
    pub sink: Sink,
}

#[derive(Debug, Clone)]
struct Down {
    since: Instant,
    reason: String,
    /// Repeats sent (or skipped by the status filter) so far.
    repeats: u32,
    /// When the next repeat is due, if the service repeats.
    next: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Sinks {
    webhook: Option<Arc<WebhookSpec>>,
    email: Option<Arc<EmailSpec>>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Policy {
    specs: HashMap<String, Sinks>,
    /// Resource groups' alert settings, by group name.
    resource_specs: HashMap<String, Sinks>,
    /// VRRP path alerts' settings (`[global.alert]`).
    vrrp_sinks: Option<Sinks>,
    down: HashMap<(String, SocketAddr), Down>,
    status: DaemonStatus,
    /// `starting`/`reloading` become `running` at this time.
    until: Option<Instant>,
    /// Decided, not yet taken by [`Policy::poll_action`].
    actions: VecDeque<Action>,
}

impl Default for Policy {
    fn default() -> Self {
        Self::new()
    }
}

impl Policy {
    /// No service has alerts; the status is `running`.
    pub fn new() -> Self {
        Policy {
            specs: HashMap::new(),
            resource_specs: HashMap::new(),
            vrrp_sinks: None,
            down: HashMap::new(),
            status: DaemonStatus::Running,
            until: None,
            actions: VecDeque::new(),
        }
    }

    /// The alert settings of every service, by name (start and reload).
    /// Down real servers stay known; a service that now repeats mails
    /// schedules its first repeat `email_alert_freq` after the real server
    /// went down, or at once if that is past; one that stops repeating
    /// stops.
    pub fn handle_specs(
        &mut self,
        specs: impl IntoIterator<Item = (String, AlertSpec)>,
        now: Instant,
    ) {
        self.specs = sinks_of(specs);
        let specs = &self.specs;
        for ((service, _), d) in self.down.iter_mut() {
            d.next = repeat_of(specs, service).map(|r| {
                let due = d.since + r * (d.repeats + 1);
                due.max(now)
            });
        }
        self.debug_sweep();
    }

    /// The alert settings of every resource group, by name (start and
    /// reload).
    pub fn handle_resource_specs(&mut self, specs: impl IntoIterator<Item = (String, AlertSpec)>) {
        self.resource_specs = sinks_of(specs);
        self.debug_sweep();
    }

    /// The alert settings of VRRP path events (start and reload).
    pub fn handle_vrrp_specs(&mut self, spec: AlertSpec) {
        self.vrrp_sinks = sinks_of([(String::new(), spec)]).remove("");
        self.debug_sweep();
    }

    /// A VRRP path died or healed: queues its alerts (the webhook always,
    /// e-mail under `email_alert_status`), not repeated.
    pub fn handle_vrrp_path(&mut self, t: PathTransition, now: Instant) {
        let subject = Subject::VrrpPath {
            instance: t.instance,
            interface: t.interface,
            peer: t.peer,
            event: t.event,
        };
        self.push_global(subject, t.reason, now);
    }

    /// An alert to `[global.alert]` (VRRP paths, config sync), not
    /// repeated.
    fn push_global(&mut self, subject: Subject, reason: String, now: Instant) {
        let Some(sinks) = self.vrrp_sinks.clone() else {
            return;
        };
        let status = self.status(now);
        let alert = Alert {
            subject,
            reason,
            status,
            repeat: 0,
            down_for: None,
        };
        self.push(&sinks, alert, status);
        self.debug_sweep();
    }

    /// A peer's config began or stopped differing from ours: queued to
    /// `[global.alert]` (the webhook always, e-mail under its
    /// `email_alert_status`), not repeated.
    pub fn handle_config_sync(&mut self, t: SyncTransition, now: Instant) {
        let subject = Subject::ConfigSync {
            peer: t.peer,
            event: t.event,
        };
        self.push_global(subject, t.reason, now);
    }

    /// Quorum lost or regained: alerted to the global sinks, as the paths
    /// are.
    pub fn handle_quorum(&mut self, event: QuorumAlert, reason: String, now: Instant) {
        self.push_global(Subject::Quorum { event }, reason, now);
    }

    /// A resource event: queues its alerts (the webhook always, e-mail
    /// under the same `email_alert_status` filter as real servers) for
    /// [`Policy::poll_action`]. Resource alerts are not repeated.
    pub fn handle_resource(&mut self, t: ResourceTransition, now: Instant) {
        let Some(sinks) = self.resource_specs.get(&t.group).cloned() else {
            return;
        };
        let status = self.status(now);
        let alert = Alert {
            subject: Subject::Resource {
                group: t.group,
                member: t.member,
                event: t.event,
            },
            reason: t.reason,
            status,
            repeat: 0,
            down_for: None,
        };
        self.push(&sinks, alert, status);
        self.debug_sweep();
    }

    fn push(&mut self, sinks: &Sinks, alert: Alert, status: DaemonStatus) {
        if let Some(w) = &sinks.webhook {
            self.actions.push_back(Action {
                alert: alert.clone(),
                sink: Sink::Webhook(w.clone()),
            });
        }
        if let Some(e) = &sinks.email {
            if e.status.contains(status) {
                self.actions.push_back(Action {
                    alert,
                    sink: Sink::Email(e.clone()),
                });
            }
        }
    }

    /// Forget the real servers `keep` says are gone (after a reload).
    pub fn retain(&mut self, mut keep: impl FnMut(&str, SocketAddr) -> bool) {
        self.down.retain(|(s, r), _| keep(s, *r));
        self.debug_sweep();
    }

    /// Sets the daemon's status; `until` turns it back into `running`
    /// (for `starting` and `reloading`).
    pub fn handle_status(&mut self, status: DaemonStatus, until: Option<Instant>) {
        self.status = status;
        self.until = until;
        self.debug_sweep();
    }

    /// The daemon's status at `now`.
    pub fn status(&self, now: Instant) -> DaemonStatus {
        match self.until {
            Some(t) if now >= t => DaemonStatus::Running,
            _ => self.status,
        }
    }

    /// Real servers known to be down.
    pub fn down_count(&self) -> usize {
        self.down.len()
    }

    /// A real server changed state: queues its alerts (one per sink that
    /// takes it) for [`Policy::poll_action`].
    pub fn handle_transition(&mut self, t: Transition, now: Instant) {
        self.transition(t, now);
        self.debug_sweep();
    }

    fn transition(&mut self, t: Transition, now: Instant) {
        let key = (t.service.clone(), t.real);
        let down_for = match t.to {
            Health::Down => {
                let next = repeat_of(&self.specs, &t.service).map(|r| now + r);
                self.down.insert(
                    key,
                    Down {
                        since: now,
                        reason: t.reason.clone(),
                        repeats: 0,
                        next,
                    },
                );
                None
            }
            Health::Up => self
                .down
                .remove(&key)
                .map(|d| now.saturating_duration_since(d.since)),
        };
        let Some(sinks) = self.specs.get(&t.service).cloned() else {
            return;
        };
        let status = self.status(now);
        let alert = Alert {
            subject: Subject::RealServer {
                service: t.service,
                real: t.real,
                from: t.from,
                to: t.to,
            },
            reason: t.reason,
            status,
            repeat: 0,
            down_for,
        };
        self.push(&sinks, alert, status);
    }

    /// The next alert to send, oldest first.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Policy::handle_timeout`] has something to do: the next
    /// repeat, or the end of `starting`/`reloading`. (Queued actions are
    /// taken with [`Policy::poll_action`] at once, whatever the time.)
    pub fn poll_timeout(&self) -> Option<Instant> {
        let repeat = self.down.values().filter_map(|d| d.next).min();
        match (repeat, self.until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: queues the repeats due at `now` for
    /// [`Policy::poll_action`], and ends `starting`/`reloading` at their
    /// deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.timeout(now);
        self.debug_sweep();
    }

    fn timeout(&mut self, now: Instant) {
        let status = self.status(now);
        if self.until.is_some_and(|t| now >= t) {
            self.status = DaemonStatus::Running;
            self.until = None;
        }
        let mut due: Vec<_> = self
            .down
            .iter_mut()
            .filter(|(_, d)| d.next.is_some_and(|n| n <= now))
            .collect();
        due.sort_by(|a, b| a.0.cmp(b.0));
        for ((service, real), d) in due {
            let Some(email) = self.specs.get(service).and_then(|s| s.email.clone()) else {
                d.next = None;
                continue;
            };
            if email.repeat.is_zero() {
                d.next = None;
                continue;
            }
            d.repeats += 1;
            d.next = Some(now + email.repeat);
            if email.status.contains(status) {
                self.actions.push_back(Action {
                    alert: Alert {
                        subject: Subject::RealServer {
                            service: service.clone(),
                            real: *real,
                            from: Health::Down,
                            to: Health::Down,
                        },
                        reason: d.reason.clone(),
                        status,
                        repeat: d.repeats,
                        down_for: Some(now.saturating_duration_since(d.since)),
                    },
                    sink: Sink::Email(email),
                });
            }
        }
    }

    /// Asserts that the policy's cross-indexed state is consistent; panics
    /// otherwise. O(services + down real servers). Debug builds call it
    /// after every input; tests may call it at any time.
    pub fn check_invariants(&self) {
        for (service, sinks) in self.specs.iter().chain(&self.resource_specs) {
            assert!(
                sinks.webhook.is_some() || sinks.email.is_some(),
                "service {service} is kept with no alert sink"
            );
        }
        for ((service, real), d) in &self.down {
            assert_eq!(
                d.next.is_some(),
                repeat_of(&self.specs, service).is_some(),
                "{service} {real}: repeating disagrees with the service's settings"
            );
            if let Some(next) = d.next {
                assert!(
                    next >= d.since,
                    "{service} {real}: a repeat before going down"
                );
            }
        }
    }

    #[cfg(debug_assertions)]
    fn debug_sweep(&self) {
        self.check_invariants();
    }

    #[cfg(not(debug_assertions))]
    #[inline(always)]
    fn debug_sweep(&self) {}
}

fn sinks_of(specs: impl IntoIterator<Item = (String, AlertSpec)>) -> HashMap<String, Sinks> {
    specs
        .into_iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(name, s)| {
            (
                name,
                Sinks {
                    webhook: s.webhook.map(Arc::new),
                    email: s.email.map(Arc::new),
                },
            )
        })
        .collect()
}

fn repeat_of(specs: &HashMap<String, Sinks>, service: &str) -> Option<Duration> {
    specs
        .get(service)
        .and_then(|s| s.email.as_ref())
        .map(|e| e.repeat)
        .filter(|r| !r.is_zero())
}

#[cfg(test)]
mod tests;
