//! The tokio shell that runs an [`Engine`] with a [`Prober`]: starts each
//! probe as a task, feeds results and the clock back, applies check-set
//! updates and forwards what the daemon needs ([`Event`]s).
//!
//! Each probe task is bounded by its own deadline, taken when the engine
//! starts it (`timeout` after the start, as the engine counts), not when
//! the runtime first polls it: under load a task that waited in the run
//! queue ends when the engine gives up on it instead of living on, so the
//! tasks (and their sockets) in flight never exceed what the rate and the
//! timeout allow. Results that are ready together are fed to the engine
//! together, before it is polled again.
//!
//! A probe task that panics or is lost simply never reports; the engine
//! fails it at its timeout. Stale results (the check was removed or the
//! probe timed out) are ignored by the engine. When the driver stops, the
//! probe tasks still running are aborted (and external commands killed).

use crate::engine::{Action, CheckId, Engine, Health, ProbeOutcome};
use crate::probe::Prober;
use crate::spec::CheckSpec;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// What the driver reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A check changed state; `reason` is the probe's.
    Transition {
        check: CheckId,
        from: Health,
        to: Health,
        reason: String,
    },
    /// A probe reported a new weight (dynamic external checks).
    Weight { check: CheckId, weight: u32 },
}

/// Runs `engine` until `updates` closes or `events` has no receiver, and
/// returns it. Each message on `updates` replaces the set of checks
/// ([`Engine::handle_checks`]).
pub async fn drive(
    mut engine: Engine,
    prober: Arc<dyn Prober>,
    mut updates: mpsc::Receiver<Vec<(CheckId, CheckSpec)>>,
    events: mpsc::UnboundedSender<Event>,
) -> Engine {
    let mut probes = JoinSet::new();
    loop {
        let now = Instant::now();
        engine.handle_timeout(now);
        while let Some(action) = engine.poll_action() {
            let event = match action {
                Action::StartProbe { probe, spec } => {
                    let timeout = spec.timing.timeout;
                    let deadline = tokio::time::Instant::from_std(now) + timeout;
                    let outcome = prober.probe(spec);
                    probes.spawn(async move {
                        let outcome = tokio::time::timeout_at(deadline, outcome)
                            .await
                            .unwrap_or_else(|_| {
                                ProbeOutcome::down(format!("timed out after {timeout:?}"))
                            });
                        (probe, outcome)
                    });
                    continue;
                }
                Action::Transition {
                    check,
                    from,
                    to,
                    reason,
                } => Event::Transition {
                    check,
                    from,
                    to,
                    reason,
                },
                Action::Weight { check, weight } => Event::Weight { check, weight },
            };
            if events.send(event).is_err() {
                return engine;
            }
        }
        let wake = engine.poll_timeout();
        let timer = async {
            match wake {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            update = updates.recv() => match update {
                Some(checks) => engine.handle_checks(checks, Instant::now()),
                None => return engine,
            },
            Some(done) = probes.join_next(), if !probes.is_empty() => {
                let now = Instant::now();
                if let Ok((probe, outcome)) = done {
                    engine.handle_result(probe, outcome, now);
                }
                while let Some(done) = probes.try_join_next() {
                    if let Ok((probe, outcome)) = done {
                        engine.handle_result(probe, outcome, now);
                    }
                }
            }
            () = timer => {}
        }
    }
}
