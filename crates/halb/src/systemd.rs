//! The systemd shell: sd_notify(3) messages (through the `sd-notify`
//! crate) and the watchdog, for `Type=notify` in `halb.service`.
//!
//! - `READY=1` once the table is applied and the control socket listens
//!   (and again after each reload);
//! - `RELOADING=1` with `MONOTONIC_USEC=` (which systemd 253 and later
//!   want with it) when a reload starts, SIGHUP or `halb reload`;
//! - `STOPPING=1` when the stop begins (the watchdog is then fed on its
//!   own until the exit: `TimeoutStopSec` bounds the drain);
//! - `WATCHDOG=1` every quarter of `WATCHDOG_USEC`, from the daemon's
//!   task, and only while the VRRP thread answered its last heartbeat: a
//!   hung task or a hung VRRP loop stops the feeding, and systemd
//!   restarts the daemon (`WatchdogSec=`, `Restart=on-failure`).
//!
//! Without `NOTIFY_SOCKET` (not started by systemd) each call does
//! nothing. The decisions (when to feed) are in [`Watchdog::due`], a
//! plain function of what the heartbeats answered, unit-tested below.

use std::time::Duration;
use tokio::sync::oneshot;

/// The daemon's link to the service manager.
#[derive(Clone, Debug)]
pub struct Notifier {
    /// `NOTIFY_SOCKET` was set at start.
    enabled: bool,
    /// `WATCHDOG_USEC` (for this process, per `WATCHDOG_PID`).
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From the environment systemd gives a `Type=notify` service.
    pub fn from_env() -> Notifier {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        Notifier {
            enabled,
            watchdog: sd_notify::watchdog_enabled().filter(|d| !d.is_zero()),
        }
    }

    fn send(&self, states: &[sd_notify::NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!("sd_notify to systemd: {e}");
        }
    }

    /// The service is up (at start, and at the end of a reload).
    pub fn ready(&self, status: &str) {
        self.send(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(status),
        ]);
    }

    /// A reload begins; [`Notifier::ready`] ends it.
    pub fn reloading(&self) {
        if !self.enabled {
            return;
        }
        match sd_notify::NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[sd_notify::NotifyState::Reloading, now]),
            Err(e) => {
                tracing::warn!("reading CLOCK_MONOTONIC for systemd: {e}");
                self.send(&[sd_notify::NotifyState::Reloading]);
            }
        }
    }

    /// The stop begins (the drain follows).
    pub fn stopping(&self) {
        self.send(&[
            sd_notify::NotifyState::Stopping,
            sd_notify::NotifyState::Status("stopping: draining"),
        ]);
    }

    /// How often the daemon's task looks at the watchdog: a quarter of
    /// `WATCHDOG_USEC` (so one late heartbeat does not cost a restart),
    /// or never without one.
    pub fn watchdog_period(&self) -> Option<Duration> {
        let w = self.watchdog?;
        self.enabled.then(|| (w / 4).max(Duration::from_millis(10)))
    }

    fn feed(&self) {
        self.send(&[sd_notify::NotifyState::Watchdog]);
    }

    /// During the stop (after [`Notifier::stopping`]): WATCHDOG=1 every
    /// period until the process ends, so a long drain is bounded by
    /// `TimeoutStopSec`, not cut by the watchdog. Spawned on the daemon's
    /// runtime; nothing without a watchdog.
    pub fn feed_while_stopping(&self) -> Option<tokio::task::JoinHandle<()>> {
        let period = self.watchdog_period()?;
        let n = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                n.feed();
            }
        }))
    }
}

/// The watchdog's state between two periods: the VRRP thread's heartbeat
/// in flight.
#[derive(Debug, Default)]
pub struct Watchdog {
    pending: Option<oneshot::Receiver<()>>,
    /// The last period did not feed (logged once per stall).
    stalled: bool,
}

impl Watchdog {
    /// One period: feeds systemd if [`Watchdog::due`] says so. `vrrp` is
    /// the VRRP thread, when one runs.
    pub fn tick(&mut self, notifier: &Notifier, vrrp: Option<&halb_vrrp_net::VrrpHandle>) {
        let feed = self.due(vrrp.map(|v| || v.heartbeat()));
        if feed {
            notifier.feed();
            if std::mem::take(&mut self.stalled) {
                tracing::warn!("watchdog: the VRRP thread answers again");
            }
        } else if !self.stalled {
            self.stalled = true;
            tracing::error!(
                "watchdog: the VRRP thread has not answered its heartbeat; \
                 systemd's watchdog is not fed (it restarts halb if this lasts WatchdogSec)"
            );
        }
    }

    /// Whether this period feeds the watchdog: yes without VRRP (the
    /// daemon's task runs, since it is asking), yes if the VRRP thread
    /// answered the last heartbeat (then a new one is sent), no while it
    /// has not, or if the thread has ended.
    pub fn due<F>(&mut self, vrrp: Option<F>) -> bool
    where
        F: FnOnce() -> oneshot::Receiver<()>,
    {
        let Some(beat) = vrrp else {
            self.pending = None;
            return true;
        };
        let answered = match self.pending.as_mut() {
            None => true,
            Some(rx) => match rx.try_recv() {
                Ok(()) => true,
                Err(oneshot::error::TryRecvError::Empty) => return false,
                Err(oneshot::error::TryRecvError::Closed) => false,
            },
        };
        if answered {
            self.pending = Some(beat());
        }
        answered
    }
}

/// Whether stderr is the journal (`JOURNAL_STREAM` names its device and
/// inode, as systemd sets it for `StandardError=journal`): then log lines
/// carry `<N>` priority prefixes and no timestamp.
pub fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(m) => m.dev() == dev && m.ino() == ino,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_vrrp_every_period_feeds() {
        let mut w = Watchdog::default();
        type Beat = fn() -> oneshot::Receiver<()>;
        assert!(w.due(None::<Beat>));
        assert!(w.due(None::<Beat>));
    }

    #[test]
    fn a_silent_vrrp_thread_stops_the_feeding() {
        let mut w = Watchdog::default();
        let mut senders = Vec::new();
        let beat = |senders: &mut Vec<oneshot::Sender<()>>| {
            let (tx, rx) = oneshot::channel();
            senders.push(tx);
            rx
        };
        // First period: nothing in flight yet, feeds and sends a heartbeat.
        assert!(w.due(Some(|| beat(&mut senders))));
        assert_eq!(senders.len(), 1);
        // Not answered: no feed, and no second heartbeat piles up.
        assert!(!w.due(Some(|| beat(&mut senders))));
        assert!(!w.due(Some(|| beat(&mut senders))));
        assert_eq!(senders.len(), 1);
        // Answered: feeds again, a new heartbeat goes out.
        senders.remove(0).send(()).unwrap();
        assert!(w.due(Some(|| beat(&mut senders))));
        assert_eq!(senders.len(), 1);
        // The thread ended (its end of the heartbeat dropped): no feed.
        senders.clear();
        assert!(!w.due(Some(|| beat(&mut senders))));
    }

    #[test]
    fn no_notify_socket_no_watchdog_period() {
        let n = Notifier {
            enabled: false,
            watchdog: Some(Duration::from_secs(4)),
        };
        assert_eq!(n.watchdog_period(), None);
        let n = Notifier {
            enabled: true,
            watchdog: Some(Duration::from_secs(4)),
        };
        assert_eq!(n.watchdog_period(), Some(Duration::from_secs(1)));
    }
}
