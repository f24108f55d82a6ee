//! The director's part of quorum (`[global.quorum]`, issue 21 item 3):
//! it owns the [`halb_quorum::Tracker`], feeds it the provider's events,
//! and turns "give up" into the VRRP fault [`QUORUM_FAULT`] on every
//! instance, as `halb standby` does: a fault set while resource groups
//! run is held until they have stopped here (resources.rs, "stop first,
//! then release"), then the master sends its priority-0 advert and drops
//! its VIPs, so the groups stop, then the VIPs move. "May hold" clears the
//! fault. Each change is logged and alerted (`halb_alert::QuorumAlert`).
//!
//! With `no_quorum_policy = "ignore"` the tracker still runs (`halb
//! list`, the log, alerts, `halb_quorum`), and no fault is set.

use std::collections::VecDeque;
use std::time::Instant;

use halb_config::Config;
use halb_quorum::{NoQuorumPolicy, Tracker};

use crate::Action;

/// The VRRP fault key of a director without quorum.
pub const QUORUM_FAULT: &str = "no quorum ([global.quorum]: this partition is not quorate)";

/// The tracker and what was sent to VRRP.
#[derive(Debug, Default)]
pub(crate) struct Quorum {
    tracker: Option<Tracker>,
    /// The fault is set on every instance (as last sent).
    fault_sent: bool,
}

/// One change of the quorum, for the log and the alert.
pub(crate) struct Change {
    pub lost: bool,
    pub reason: String,
}

impl Quorum {
    pub(crate) fn new(config: &Config, now: Instant) -> Quorum {
        Quorum {
            tracker: config.global.quorum.clone().map(|s| Tracker::new(s, now)),
            fault_sent: false,
        }
    }

    pub(crate) fn tracker(&self) -> Option<&Tracker> {
        self.tracker.as_ref()
    }

    /// Whether the fault should be set now.
    fn desired(&self) -> bool {
        self.tracker
            .as_ref()
            .is_some_and(|t| !t.may_hold() && t.settings().no_quorum_policy == NoQuorumPolicy::Stop)
    }

    /// Sends the fault's change to VRRP (with `resend`: to a VRRP that
    /// starts afresh, whatever was sent before).
    pub(crate) fn sync(&mut self, config: &Config, resend: bool, out: &mut VecDeque<Action>) {
        let want = self.desired();
        if want == self.fault_sent && !(resend && want) {
            return;
        }
        self.fault_sent = want;
        for i in &config.vrrp_instances {
            out.push_back(Action::SetFault {
                instance: i.name.clone(),
                key: QUORUM_FAULT.to_owned(),
                faulty: want,
            });
        }
    }

    /// An event from the provider's shell: the changes it made.
    pub(crate) fn handle_event(&mut self, ev: halb_quorum::Event, now: Instant) -> Vec<Change> {
        let Some(t) = self.tracker.as_mut() else {
            return Vec::new();
        };
        t.handle_event(ev, now);
        drain(t)
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Vec<Change> {
        let Some(t) = self.tracker.as_mut() else {
            return Vec::new();
        };
        if t.poll_timeout().is_some_and(|d| d <= now) {
            t.handle_timeout(now);
        }
        drain(t)
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.tracker.as_ref().and_then(Tracker::poll_timeout)
    }

    /// A reload: the settle time and the policy apply at once; adding or
    /// removing `[global.quorum]` needs a restart (the provider's shell
    /// starts with the daemon), and is reported so.
    pub(crate) fn reload(&mut self, new: &Config, now: Instant) -> bool {
        match (self.tracker.as_mut(), new.global.quorum.as_ref()) {
            (Some(t), Some(s)) => {
                if t.settings() != s {
                    t.set_settings(s.clone(), now);
                }
                false
            }
            (None, None) => false,
            _ => true,
        }
    }

    pub(crate) fn check_invariants(&self) {
        if let Some(t) = &self.tracker {
            if let Err(e) = t.check_invariants() {
                panic!("quorum: {e}");
            }
        }
    }
}

fn drain(t: &mut Tracker) -> Vec<Change> {
    let mut v = Vec::new();
    while let Some(a) = t.poll_action() {
        v.push(match a {
            halb_quorum::Action::GiveUp { reason } => Change { lost: true, reason },
            halb_quorum::Action::MayHold { reason } => Change {
                lost: false,
                reason,
            },
        });
    }
    v
}
