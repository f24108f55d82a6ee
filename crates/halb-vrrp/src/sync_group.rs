//! Sync groups: virtual router instances that change state together
//! (keepalived's `vrrp_sync_group`; not part of the RFCs).
//!
//! When a member changes state on its own (a timer, an advert, its link),
//! the others follow: one becomes Master, all become Master; one steps down
//! to Backup, all step down; one goes to Fault, all go to Fault, and they
//! come back to Backup when it comes back. Transitions the group imposes
//! carry [`Reason::SyncGroup`] and do not propagate further.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Instant;

use crate::packet::Advert;
use crate::router::{Action, Reason, Router, State};

/// Instances moving together. Members are addressed by their index in the
/// vector given to [`SyncGroup::new`].
#[derive(Debug)]
pub struct SyncGroup {
    members: Vec<Router>,
    actions: VecDeque<(usize, Action)>,
}

impl SyncGroup {
    /// A group of `members` (each in Initialize).
    pub fn new(members: Vec<Router>) -> SyncGroup {
        SyncGroup {
            members,
            actions: VecDeque::new(),
        }
    }

    /// The members.
    pub fn members(&self) -> &[Router] {
        &self.members
    }

    /// Startup event for every member.
    pub fn start(&mut self, now: Instant) {
        for m in &mut self.members {
            m.start(now);
        }
        self.settle(now);
    }

    /// Shutdown event for every member.
    pub fn shutdown(&mut self, now: Instant) {
        for m in &mut self.members {
            m.shutdown(now);
        }
        self.settle(now);
    }

    /// An advert for `member` (see [`Router::handle_advert`]).
    pub fn handle_advert(&mut self, member: usize, src: IpAddr, advert: &Advert, now: Instant) {
        if let Some(m) = self.members.get_mut(member) {
            m.handle_advert(src, advert, now);
        }
        self.settle(now);
    }

    /// An advert for `member` over path `path` (see
    /// [`Router::handle_advert_on`]).
    pub fn handle_advert_on(
        &mut self,
        member: usize,
        path: usize,
        src: IpAddr,
        advert: &Advert,
        now: Instant,
    ) {
        if let Some(m) = self.members.get_mut(member) {
            m.handle_advert_on(path, src, advert, now);
        }
        self.settle(now);
    }

    /// `member`'s link went down.
    pub fn link_down(&mut self, member: usize, now: Instant) {
        if let Some(m) = self.members.get_mut(member) {
            m.link_down(now);
        }
        self.settle(now);
    }

    /// `member`'s link came up.
    pub fn link_up(&mut self, member: usize, now: Instant) {
        if let Some(m) = self.members.get_mut(member) {
            m.link_up(now);
        }
        self.settle(now);
    }

    /// Tracking for `member` (see [`Router::set_priority_delta`]).
    pub fn set_priority_delta(&mut self, member: usize, delta: i32) {
        if let Some(m) = self.members.get_mut(member) {
            m.set_priority_delta(delta);
        }
    }

    /// `halb takeover` for the whole group ([`Router::set_takeover`]):
    /// every member at once, since a member left at its own priority would
    /// be preempted by its peer and pull the others back. True when it
    /// changed something.
    pub fn set_takeover(&mut self, on: bool, now: Instant) -> bool {
        let mut changed = false;
        for m in &mut self.members {
            changed |= m.set_takeover(on, now);
        }
        self.settle(now);
        changed
    }

    /// Changes `member` in place (reload: [`Router::set_priority`],
    /// [`Router::set_virtual_addresses`]) and collects its actions.
    pub fn update<T>(
        &mut self,
        member: usize,
        now: Instant,
        f: impl FnOnce(&mut Router) -> T,
    ) -> Option<T> {
        let out = self.members.get_mut(member).map(f);
        self.settle(now);
        out
    }

    /// Fires every member's due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        for m in &mut self.members {
            if m.poll_timeout().is_some_and(|t| t <= now) {
                m.handle_timeout(now);
            }
        }
        self.settle(now);
    }

    /// The next action, with the index of the member it is for.
    pub fn poll_action(&mut self) -> Option<(usize, Action)> {
        self.actions.pop_front()
    }

    /// The earliest deadline of all members.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.members.iter().filter_map(Router::poll_timeout).min()
    }

    /// Collects the members' actions and makes the others follow every
    /// transition a member made on its own.
    fn settle(&mut self, now: Instant) {
        let mut triggers = Vec::new();
        for (i, m) in self.members.iter_mut().enumerate() {
            while let Some(a) = m.poll_action() {
                if let Action::StateChange { from, to, reason } = a {
                    if reason != Reason::SyncGroup {
                        triggers.push((i, from, to));
                    }
                }
                self.actions.push_back((i, a));
            }
        }
        for (i, from, to) in triggers {
            let all_links_up = self.members.iter().all(Router::is_link_up);
            if from == State::Fault && !all_links_up {
                // Back up, but another member's link is still down: the
                // group stays in Fault.
                if let Some(m) = self.members.get_mut(i) {
                    m.force_fault();
                }
                continue;
            }
            for (j, m) in self.members.iter_mut().enumerate() {
                if j == i {
                    continue;
                }
                if from == State::Fault && all_links_up {
                    // The member that caused the group's Fault is back:
                    // everyone starts again (an owner as Master).
                    m.release_fault(now);
                }
                match to {
                    State::Master => m.force_master(now),
                    State::Backup => m.force_backup(now),
                    State::Fault => m.force_fault(),
                    State::Initialize => {}
                }
            }
        }
        // Imposed transitions carry Reason::SyncGroup: one more pass only
        // collects their actions.
        for (i, m) in self.members.iter_mut().enumerate() {
            while let Some(a) = m.poll_action() {
                self.actions.push_back((i, a));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::Config;
    use std::time::Duration;

    fn router(vrid: u8, prio: u8) -> Router {
        Router::new(Config::new(
            vrid,
            prio,
            "192.0.2.1".parse().unwrap(),
            vec![format!("192.0.2.{}", 100 + vrid).parse().unwrap()],
        ))
        .unwrap()
    }

    fn states(g: &SyncGroup) -> Vec<State> {
        g.members().iter().map(Router::state).collect()
    }

    #[test]
    fn members_move_together() {
        let t0 = Instant::now();
        // Member 0 becomes master sooner (higher priority: shorter skew).
        let mut g = SyncGroup::new(vec![router(1, 200), router(2, 100)]);
        g.start(t0);
        assert_eq!(states(&g), [State::Backup, State::Backup]);
        let t = g.poll_timeout().unwrap();
        g.handle_timeout(t);
        assert_eq!(states(&g), [State::Master, State::Master]);
        let reasons: Vec<_> = std::iter::from_fn(|| g.poll_action())
            .filter_map(|(i, a)| match a {
                Action::StateChange {
                    to: State::Master,
                    reason,
                    ..
                } => Some((i, reason)),
                _ => None,
            })
            .collect();
        assert_eq!(reasons, [(0, Reason::MasterDown), (1, Reason::SyncGroup)]);

        // A higher-priority master for VRID 2 sends member 1 to Backup:
        // member 0 follows.
        let mut other = router(2, 250);
        let adv = other.advert(250);
        let _ = other.poll_action();
        g.handle_advert(
            1,
            "192.0.2.9".parse().unwrap(),
            &adv,
            t + Duration::from_millis(1),
        );
        assert_eq!(states(&g), [State::Backup, State::Backup]);

        // Member 1's link goes down: all Fault; back up: all Backup.
        g.link_down(1, t + Duration::from_secs(1));
        assert_eq!(states(&g), [State::Fault, State::Fault]);
        g.link_up(1, t + Duration::from_secs(2));
        assert_eq!(states(&g), [State::Backup, State::Backup]);

        // Both links down; one back: the group stays in Fault until both.
        g.link_down(0, t + Duration::from_secs(3));
        g.link_down(1, t + Duration::from_secs(3));
        assert_eq!(states(&g), [State::Fault, State::Fault]);
        g.link_up(0, t + Duration::from_secs(4));
        assert_eq!(states(&g), [State::Fault, State::Fault]);
        g.link_up(1, t + Duration::from_secs(5));
        assert_eq!(states(&g), [State::Backup, State::Backup]);
        assert!(g.poll_timeout().is_some());
    }
}
