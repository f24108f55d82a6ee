//! The drift tracker, sans-IO: when to ask each peer for its digest, and
//! what a digest (or a failure) means.
//!
//! Each director asks every peer on its own every `interval`, so each
//! side sees a difference without waiting for the other. A peer is
//! `InSync` when its digest equals ours, `Differs` (since the first
//! answer that differed, kept while it goes on differing) or
//! `Unreachable` (the connection or the handshake failed: a wrong key is
//! one). A change of our own digest (a reload) is compared at once with
//! the peer's last answer, and the peer is asked again.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How one peer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerState {
    /// Not asked yet.
    Unknown,
    InSync {
        since: Instant,
    },
    Differs {
        since: Instant,
        theirs: String,
    },
    Unreachable {
        since: Instant,
        reason: String,
    },
}

/// What the shell does or says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask this peer for its digest; answer with
    /// [`Tracker::handle_digest`] or [`Tracker::handle_failure`].
    Ask { peer: usize },
    /// A peer's state changed (log it; `Differs` and the return to
    /// `InSync` from it are alerted).
    Changed {
        peer: usize,
        from: PeerState,
        to: PeerState,
    },
}

#[derive(Debug)]
struct Peer {
    state: PeerState,
    /// The peer's last digest, if it answered.
    theirs: Option<String>,
    next: Instant,
    asking: bool,
}

/// One tracker for all the peers of `[global.sync]`.
#[derive(Debug)]
pub struct Tracker {
    interval: Duration,
    timeout: Duration,
    ours: String,
    peers: Vec<Peer>,
    actions: VecDeque<Action>,
}

impl Tracker {
    /// `n` peers, asked first at once, then every `interval`; a question
    /// unanswered after `timeout` counts as a failure.
    pub fn new(n: usize, ours: String, interval: Duration, now: Instant) -> Tracker {
        Tracker {
            interval,
            timeout: interval.max(Duration::from_secs(1)),
            ours,
            peers: (0..n)
                .map(|_| Peer {
                    state: PeerState::Unknown,
                    theirs: None,
                    next: now,
                    asking: false,
                })
                .collect(),
            actions: VecDeque::new(),
        }
    }

    /// How long the shell gives one question.
    pub fn ask_timeout(&self) -> Duration {
        self.timeout
    }

    pub fn state(&self, peer: usize) -> Option<&PeerState> {
        self.peers.get(peer).map(|p| &p.state)
    }

    /// The peer's last digest.
    pub fn theirs(&self, peer: usize) -> Option<&str> {
        self.peers.get(peer).and_then(|p| p.theirs.as_deref())
    }

    pub fn ours(&self) -> &str {
        &self.ours
    }

    /// Our running config changed (a reload or a push applied).
    pub fn handle_local(&mut self, digest: String, now: Instant) {
        if digest == self.ours {
            return;
        }
        self.ours = digest;
        for i in 0..self.peers.len() {
            if let Some(t) = self.peers[i].theirs.clone() {
                if !matches!(self.peers[i].state, PeerState::Unreachable { .. }) {
                    self.judge(i, t, now);
                }
            }
            let p = &mut self.peers[i];
            if !p.asking {
                p.next = now;
            }
        }
    }

    /// The peer answered with its digest.
    pub fn handle_digest(&mut self, peer: usize, digest: String, now: Instant) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        p.asking = false;
        p.next = now + self.interval;
        p.theirs = Some(digest.clone());
        self.judge(peer, digest, now);
    }

    /// Asking the peer failed.
    pub fn handle_failure(&mut self, peer: usize, reason: String, now: Instant) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        p.asking = false;
        p.next = now + self.interval;
        let to = match &p.state {
            PeerState::Unreachable { since, reason: r } if *r == reason => return,
            PeerState::Unreachable { since, .. } => PeerState::Unreachable {
                since: *since,
                reason,
            },
            _ => PeerState::Unreachable { since: now, reason },
        };
        self.set(peer, to);
    }

    fn judge(&mut self, peer: usize, theirs: String, now: Instant) {
        let to = match (&self.peers[peer].state, theirs == self.ours) {
            (PeerState::InSync { .. }, true) => return,
            (PeerState::Differs { since, theirs: t }, false) => {
                if *t == theirs {
                    return;
                }
                PeerState::Differs {
                    since: *since,
                    theirs,
                }
            }
            (_, true) => PeerState::InSync { since: now },
            (_, false) => PeerState::Differs { since: now, theirs },
        };
        self.set(peer, to);
    }

    fn set(&mut self, peer: usize, to: PeerState) {
        let from = std::mem::replace(&mut self.peers[peer].state, to.clone());
        self.actions.push_back(Action::Changed { peer, from, to });
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for (i, p) in self.peers.iter_mut().enumerate() {
            if !p.asking && p.next <= now {
                p.asking = true;
                p.next = now + self.timeout;
                self.actions.push_back(Action::Ask { peer: i });
            }
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Tracker::handle_timeout`] has something to do (a peer not
    /// being asked is due).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .iter()
            .filter(|p| !p.asking)
            .map(|p| p.next)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(t: &mut Tracker) -> Vec<Action> {
        std::iter::from_fn(|| t.poll_action()).collect()
    }

    #[test]
    fn asks_each_peer_every_interval_and_reports_changes_once() {
        let t0 = Instant::now();
        let s = Duration::from_secs(5);
        let mut t = Tracker::new(1, "a".into(), s, t0);
        assert_eq!(t.poll_timeout(), Some(t0));
        t.handle_timeout(t0);
        assert_eq!(drain(&mut t), [Action::Ask { peer: 0 }]);
        assert_eq!(t.poll_timeout(), None);
        t.handle_digest(0, "a".into(), t0);
        assert!(matches!(
            drain(&mut t)[..],
            [Action::Changed {
                to: PeerState::InSync { .. },
                ..
            }]
        ));
        assert_eq!(t.poll_timeout(), Some(t0 + s));
        // The same answer again: nothing said.
        t.handle_timeout(t0 + s);
        assert_eq!(drain(&mut t), [Action::Ask { peer: 0 }]);
        t.handle_digest(0, "a".into(), t0 + s);
        assert!(drain(&mut t).is_empty());
        // The peer's config changed: Differs, once, since then.
        t.handle_timeout(t0 + 2 * s);
        drain(&mut t);
        t.handle_digest(0, "b".into(), t0 + 2 * s);
        let a = drain(&mut t);
        assert!(
            matches!(&a[..], [Action::Changed { to: PeerState::Differs { since, .. }, .. }] if *since == t0 + 2 * s),
            "{a:?}"
        );
        t.handle_timeout(t0 + 3 * s);
        drain(&mut t);
        t.handle_digest(0, "b".into(), t0 + 3 * s);
        assert!(drain(&mut t).is_empty());
        // We reload to the same config: in sync at once, and asked again.
        t.handle_local("b".into(), t0 + 3 * s + Duration::from_secs(1));
        let a = drain(&mut t);
        assert!(
            matches!(
                &a[..],
                [Action::Changed {
                    from: PeerState::Differs { .. },
                    to: PeerState::InSync { .. },
                    ..
                }]
            ),
            "{a:?}"
        );
        assert_eq!(t.poll_timeout(), Some(t0 + 3 * s + Duration::from_secs(1)));
    }

    #[test]
    fn failures_are_unreachable_and_said_once() {
        let t0 = Instant::now();
        let mut t = Tracker::new(2, "a".into(), Duration::from_secs(1), t0);
        t.handle_timeout(t0);
        assert_eq!(drain(&mut t).len(), 2);
        t.handle_failure(1, "authentication failed".into(), t0);
        t.handle_failure(1, "authentication failed".into(), t0);
        assert_eq!(drain(&mut t).len(), 1);
        assert!(matches!(t.state(1), Some(PeerState::Unreachable { .. })));
        assert_eq!(t.state(0), Some(&PeerState::Unknown));
        // Out-of-range peers are ignored.
        t.handle_digest(7, "x".into(), t0);
        t.handle_failure(7, "x".into(), t0);
        assert!(drain(&mut t).is_empty());
    }
}
