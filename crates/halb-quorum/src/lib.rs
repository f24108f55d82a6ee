//! Quorum for three directors or more (issue 21, item 3): membership and
//! quorum come from Corosync 3, not from a protocol of our own, and a
//! director whose partition is not quorate gives up its resource groups
//! and its VIPs (Pacemaker's `no-quorum-policy=stop`).
//!
//! - [`Settings`]: `[global.quorum]` as halb-config builds it (plain data).
//! - [`Tracker`]: the sans-IO core. It is fed the provider's [`Event`]s
//!   (a quorum notification: quorate or not, the members, the ring id,
//!   the votes; the provider connected; the provider lost) with `now`,
//!   and says [`Action::GiveUp`] or [`Action::MayHold`]; its next
//!   deadline is the end of the settle time. No I/O, no clock.
//! - [`corosync`] (default feature `corosync`): the shell, a thread that
//!   tracks Corosync's quorum through rust-corosync and reports events.
//!
//! The rules the tracker keeps (its `check_invariants` sweeps them after
//! every input in debug builds):
//!
//! - Losing quorum gives up at once: no settle time on the way down. The
//!   majority may take over as soon as its own membership has settled,
//!   so any delay here is time two directors hold the same VIP.
//! - Losing the provider (Corosync stopped, its IPC connection broken)
//!   counts as not quorate, and so does not knowing yet (before the
//!   first notification after a connect).
//! - Quorum regained is acted on only after it held for `settle`
//!   without a break, so a membership that flaps does not start and stop
//!   the groups each time; a member list that changes while the
//!   partition stays quorate does not restart the settle time.
//!
//! With `default-features = false` the crate is the sans-IO part only,
//! which is what halb-config and halb-director take.

#![cfg_attr(test, allow(clippy::unwrap_used))]

#[cfg(feature = "corosync")]
pub mod corosync;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The default settle time: how long quorum must hold, unbroken, before a
/// director that lost it takes its groups back. Corosync itself only
/// reports a membership after its token and consensus timeouts (2.2 s
/// with `token: 1000`), so a change that comes back sooner than this is a
/// flap of one member, and 2 s covers one more membership round; losing
/// quorum is acted on at once whatever this says.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);

/// The longest settle time the config accepts: a partition that regained
/// quorum waits this at most before it may hold groups again.
pub const MAX_SETTLE: Duration = Duration::from_secs(300);

/// Where membership and quorum come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Corosync 3's quorum service (votequorum), through its libraries.
    Corosync,
}

impl Provider {
    /// The config's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Corosync => "corosync",
        }
    }
}

/// What a director does without quorum (Pacemaker's `no-quorum-policy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoQuorumPolicy {
    /// Stop every resource group and give up every VRRP instance (its
    /// VIPs move to a director that has quorum).
    #[default]
    Stop,
    /// Report (`halb list`, the log, alerts, the metric) and change
    /// nothing: for a first deployment, to watch before relying on it.
    Ignore,
}

impl NoQuorumPolicy {
    /// The config's name for it.
    pub fn name(self) -> &'static str {
        match self {
            NoQuorumPolicy::Stop => "stop",
            NoQuorumPolicy::Ignore => "ignore",
        }
    }
}

/// `[global.quorum]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    pub provider: Provider,
    /// How long regained quorum must hold before groups may run again.
    pub settle: Duration,
    pub no_quorum_policy: NoQuorumPolicy,
}

impl Settings {
    /// Corosync with the defaults.
    pub fn corosync() -> Settings {
        Settings {
            provider: Provider::Corosync,
            settle: DEFAULT_SETTLE,
            no_quorum_policy: NoQuorumPolicy::Stop,
        }
    }
}

/// A ring (membership) id: the node that formed it and its sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ring {
    pub node: u32,
    pub seq: u64,
}

/// The votes behind a notification, as votequorum counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Votes {
    /// The votes of the members of this partition.
    pub have: u32,
    /// The votes the whole cluster is expected to have.
    pub expected: u32,
    /// How many make quorum.
    pub needed: u32,
}

/// One quorum notification from the provider.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Notification {
    pub quorate: bool,
    pub ring: Option<Ring>,
    /// The node ids of this partition's members.
    pub members: Vec<u32>,
    pub votes: Option<Votes>,
}

/// An input from the provider's shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Connected to the provider (quorum is still unknown).
    Connected,
    Notification(Notification),
    /// The connection to the provider is gone (or could not be made).
    Lost {
        reason: String,
    },
}

/// What the tracker asks of the director.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Not quorate (or the provider lost): stop the groups and give up
    /// the VRRP instances now. `reason` is for the log and the alert.
    GiveUp { reason: String },
    /// Quorate for the settle time: groups and VIPs may be held again.
    MayHold { reason: String },
}

/// The tracker's state, for `halb list`, `--json` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    pub provider: Provider,
    pub no_quorum_policy: NoQuorumPolicy,
    pub connected: bool,
    /// The last notification's verdict (None: none since connecting).
    pub quorate: Option<bool>,
    /// Groups and VIPs may be held (quorate for the settle time).
    pub may_hold: bool,
    pub members: Vec<u32>,
    pub ring: Option<Ring>,
    pub votes: Option<Votes>,
    /// One line: "quorate (corosync: 2 of 3 votes)", "no quorum
    /// (corosync: 1 of 3 votes)", "no quorum (corosync: not connected:
    /// …)".
    pub summary: String,
}

/// The sans-IO quorum tracker. See the crate documentation.
#[derive(Debug, Clone)]
pub struct Tracker {
    settings: Settings,
    connected: bool,
    /// Why the provider is not connected (None before the first try).
    lost: Option<String>,
    /// The last notification since connecting.
    last: Option<Notification>,
    /// Quorate without a break since then.
    quorate_since: Option<Instant>,
    may_hold: bool,
    actions: VecDeque<Action>,
    now: Instant,
}

impl Tracker {
    /// A tracker that has heard nothing yet: it may not hold.
    pub fn new(settings: Settings, now: Instant) -> Tracker {
        Tracker {
            settings,
            connected: false,
            lost: None,
            last: None,
            quorate_since: None,
            may_hold: false,
            actions: VecDeque::new(),
            now,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// New settings (a reload): the settle time applies from now on.
    pub fn set_settings(&mut self, settings: Settings, now: Instant) {
        self.advance(now);
        self.settings = settings;
        self.evaluate();
        self.debug_check();
    }

    /// Whether groups and VIPs may be held now.
    pub fn may_hold(&self) -> bool {
        self.may_hold
    }

    /// An event from the provider's shell.
    pub fn handle_event(&mut self, event: Event, now: Instant) {
        self.advance(now);
        match event {
            Event::Connected => {
                // A connect starts from nothing known: the notification
                // that follows says whether we are quorate.
                if self.connected {
                    self.lose("the provider reconnected; waiting for its first notification");
                }
                self.connected = true;
                self.lost = None;
            }
            Event::Notification(n) => {
                self.connected = true;
                self.lost = None;
                if n.quorate {
                    if self.quorate_since.is_none() {
                        self.quorate_since = Some(self.now);
                    }
                    self.last = Some(n);
                } else {
                    self.last = Some(n);
                    self.quorate_since = None;
                    if self.may_hold {
                        self.may_hold = false;
                        self.actions.push_back(Action::GiveUp {
                            reason: self.summary(),
                        });
                    }
                }
            }
            Event::Lost { reason } => {
                self.connected = false;
                self.lost = Some(reason);
                self.lose("");
            }
        }
        self.evaluate();
        self.debug_check();
    }

    /// The settle time may have ended.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        self.evaluate();
        self.debug_check();
    }

    /// The next thing for the director to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the settle time ends (None: nothing pending).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.quorate_since {
            Some(t) if !self.may_hold => Some(t + self.settings.settle),
            _ => None,
        }
    }

    /// The state, for `halb list` and `/metrics`.
    pub fn status(&self) -> Status {
        let n = self.last.as_ref();
        Status {
            provider: self.settings.provider,
            no_quorum_policy: self.settings.no_quorum_policy,
            connected: self.connected,
            quorate: n.map(|n| n.quorate),
            may_hold: self.may_hold,
            members: n.map(|n| n.members.clone()).unwrap_or_default(),
            ring: n.and_then(|n| n.ring),
            votes: n.and_then(|n| n.votes),
            summary: self.summary(),
        }
    }

    /// One line on the quorum, for the log, alerts and `halb list`.
    pub fn summary(&self) -> String {
        let p = self.settings.provider.name();
        let Some(n) = self.last.as_ref().filter(|_| self.connected) else {
            let why = match (&self.lost, self.connected) {
                (_, true) => "connected, no notification yet".to_owned(),
                (Some(r), false) => format!("not connected: {r}"),
                (None, false) => "not connected yet".to_owned(),
            };
            return format!("no quorum ({p}: {why})");
        };
        let count = match n.votes {
            Some(v) => format!("{} of {} votes", v.have, v.expected),
            None => match n.members.len() {
                1 => "1 member".to_owned(),
                m => format!("{m} members"),
            },
        };
        if !n.quorate {
            format!("no quorum ({p}: {count})")
        } else if self.may_hold {
            format!("quorate ({p}: {count})")
        } else {
            format!(
                "quorate, settling for {} ({p}: {count})",
                fmt_duration(self.settings.settle)
            )
        }
    }

    fn lose(&mut self, _why: &str) {
        self.last = None;
        self.quorate_since = None;
        if self.may_hold {
            self.may_hold = false;
            self.actions.push_back(Action::GiveUp {
                reason: self.summary(),
            });
        }
    }

    fn evaluate(&mut self) {
        if self.may_hold {
            return;
        }
        if let Some(t) = self.quorate_since {
            if self.now.saturating_duration_since(t) >= self.settings.settle {
                self.may_hold = true;
                self.actions.push_back(Action::MayHold {
                    reason: self.summary(),
                });
            }
        }
    }

    fn advance(&mut self, now: Instant) {
        // Time never goes back, whatever the shell passes.
        if now > self.now {
            self.now = now;
        }
    }

    fn debug_check(&self) {
        #[cfg(debug_assertions)]
        if let Err(e) = self.check_invariants() {
            panic!("quorum tracker invariant broken: {e}");
        }
    }

    /// The tracker's rules, checked after every input in debug builds.
    pub fn check_invariants(&self) -> Result<(), String> {
        let quorate = self.connected && self.last.as_ref().is_some_and(|n| n.quorate);
        if self.quorate_since.is_some() != quorate {
            return Err(format!(
                "quorate_since {:?} but connected {} and last {:?}",
                self.quorate_since, self.connected, self.last
            ));
        }
        if self.may_hold {
            let Some(t) = self.quorate_since else {
                return Err("may hold without quorum".into());
            };
            if self.now.saturating_duration_since(t) < self.settings.settle {
                return Err("may hold before the settle time ended".into());
            }
        } else if let Some(t) = self.quorate_since {
            if self.now.saturating_duration_since(t) >= self.settings.settle {
                return Err("settled but not holding".into());
            }
        }
        if !self.connected && self.last.is_some() {
            return Err("a notification kept after the provider was lost".into());
        }
        // Actions alternate, and the last one says the current state.
        let mut prev: Option<bool> = None;
        for a in &self.actions {
            let hold = matches!(a, Action::MayHold { .. });
            if prev == Some(hold) {
                return Err(format!("two {a:?} in a row"));
            }
            prev = Some(hold);
        }
        if let Some(p) = prev {
            if p != self.may_hold {
                return Err("the last queued action disagrees with may_hold".into());
            }
        }
        Ok(())
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(quorate: bool, members: &[u32], have: u32) -> Event {
        Event::Notification(Notification {
            quorate,
            ring: Some(Ring { node: 1, seq: 8 }),
            members: members.to_vec(),
            votes: Some(Votes {
                have,
                expected: 3,
                needed: 2,
            }),
        })
    }

    fn settings(settle: u64) -> Settings {
        Settings {
            settle: Duration::from_secs(settle),
            ..Settings::corosync()
        }
    }

    #[test]
    fn starts_without_quorum_and_holds_after_settle() {
        let t0 = Instant::now();
        let mut t = Tracker::new(settings(2), t0);
        assert!(!t.may_hold());
        assert_eq!(t.summary(), "no quorum (corosync: not connected yet)");
        t.handle_event(Event::Connected, t0);
        t.handle_event(note(true, &[1, 2, 3], 3), t0);
        assert!(!t.may_hold());
        assert_eq!(t.poll_action(), None);
        assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(2)));
        assert!(t.summary().starts_with("quorate, settling for 2s"));
        t.handle_timeout(t0 + Duration::from_secs(2));
        assert!(t.may_hold());
        assert_eq!(
            t.poll_action(),
            Some(Action::MayHold {
                reason: "quorate (corosync: 3 of 3 votes)".into()
            })
        );
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn losing_quorum_gives_up_at_once() {
        let t0 = Instant::now();
        let mut t = Tracker::new(settings(0), t0);
        t.handle_event(note(true, &[1, 2, 3], 3), t0);
        assert!(matches!(t.poll_action(), Some(Action::MayHold { .. })));
        t.handle_event(note(false, &[1], 1), t0 + Duration::from_secs(5));
        assert_eq!(
            t.poll_action(),
            Some(Action::GiveUp {
                reason: "no quorum (corosync: 1 of 3 votes)".into()
            })
        );
        assert!(!t.may_hold());
    }

    #[test]
    fn provider_lost_is_no_quorum() {
        let t0 = Instant::now();
        let mut t = Tracker::new(settings(0), t0);
        t.handle_event(note(true, &[1, 2, 3], 3), t0);
        t.poll_action();
        t.handle_event(
            Event::Lost {
                reason: "CS_ERR_LIBRARY".into(),
            },
            t0,
        );
        assert!(!t.may_hold());
        assert_eq!(
            t.poll_action(),
            Some(Action::GiveUp {
                reason: "no quorum (corosync: not connected: CS_ERR_LIBRARY)".into()
            })
        );
        assert_eq!(t.status().quorate, None);
    }

    #[test]
    fn a_flap_shorter_than_settle_does_not_restart_groups() {
        let t0 = Instant::now();
        let s = Duration::from_secs(2);
        let mut t = Tracker::new(settings(2), t0);
        t.handle_event(note(true, &[1, 2, 3], 3), t0);
        t.handle_timeout(t0 + s);
        assert!(matches!(t.poll_action(), Some(Action::MayHold { .. })));
        // Lost, back, lost again within the settle time: one GiveUp.
        t.handle_event(note(false, &[1], 1), t0 + 3 * s);
        t.handle_event(note(true, &[1, 2], 2), t0 + 3 * s + s / 4);
        t.handle_event(note(false, &[1], 1), t0 + 3 * s + s / 2);
        t.handle_timeout(t0 + 4 * s);
        assert!(matches!(t.poll_action(), Some(Action::GiveUp { .. })));
        assert_eq!(t.poll_action(), None);
        assert!(!t.may_hold());
    }

    #[test]
    fn members_changing_while_quorate_keep_the_settle_time() {
        let t0 = Instant::now();
        let s = Duration::from_secs(2);
        let mut t = Tracker::new(settings(2), t0);
        t.handle_event(note(true, &[1, 2], 2), t0);
        t.handle_event(note(true, &[1, 2, 3], 3), t0 + s / 2);
        assert_eq!(t.poll_timeout(), Some(t0 + s));
    }

    #[test]
    fn reconnect_starts_from_unknown() {
        let t0 = Instant::now();
        let mut t = Tracker::new(settings(0), t0);
        t.handle_event(Event::Connected, t0);
        t.handle_event(note(true, &[1, 2, 3], 3), t0);
        t.poll_action();
        t.handle_event(Event::Connected, t0);
        assert!(!t.may_hold());
        assert!(matches!(t.poll_action(), Some(Action::GiveUp { .. })));
        assert_eq!(
            t.summary(),
            "no quorum (corosync: connected, no notification yet)"
        );
    }

    #[test]
    fn summary_without_votes_counts_members() {
        let t0 = Instant::now();
        let mut t = Tracker::new(settings(0), t0);
        t.handle_event(
            Event::Notification(Notification {
                quorate: false,
                ring: None,
                members: vec![1],
                votes: None,
            }),
            t0,
        );
        assert_eq!(t.summary(), "no quorum (corosync: 1 member)");
    }
}
