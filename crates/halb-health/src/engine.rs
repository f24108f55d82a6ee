//! The check engine, sans-IO: which probe to start when, which probe has
//! timed out, and what the results mean (rise/fall). Fed probe results and
//! `now`; emits [`Action`]s and its next deadline, like quinn-proto.
//!
//! Driving it:
//!
//! ```text
//! loop {
//!     engine.handle_timeout(now);
//!     while let Some(action) = engine.poll_action() { /* start probes, apply transitions */ }
//!     sleep until engine.poll_timeout(), a probe reports (engine.handle_result(.., now))
//!     or the configuration changes (engine.handle_checks(.., now))
//! }
//! ```
//!
//! Like every sans-IO core of the workspace: `handle_*(…, now)` are the
//! inputs (each also advances the engine's clock, which never goes back),
//! [`Engine::poll_action`] the outputs, decided at the engine's current
//! time, and [`Engine::poll_timeout`] the next deadline.
//!
//! **Invariants.** [`Engine::check_invariants`] asserts that the
//! cross-indexed maps (checks, slots, specs, probes in flight, timers)
//! agree. Debug builds run it after every input and whenever
//! [`Engine::poll_action`] has drained what is due: in full on every call
//! while the engine is small (up to 512 entries: checks + slots + timers +
//! waiting starts, which covers the unit and property tests), and on every
//! ⌈size / 2⌉-th call once it is larger, so the sweep costs about two
//! entries per call, amortized, and the 10,000-check simulations stay
//! within a few times their speed without it (a sweep after every input
//! would make them quadratic). The O(1) size checks run on every call.
//!
//! **Sharing.** Checks with equal [`CheckSpec`]s (same target, probe and
//! timing) are one *probe slot*: one real server behind several virtual
//! services is probed once, and all its checks share one state. A check
//! that joins an existing slot inherits its current health (read it with
//! [`Engine::health`] after [`Engine::handle_checks`]); no transition is
//! emitted for it.
//!
//! **Spread.** A new slot's first probe is placed at `frac(k·φ)·interval`
//! after `now`, `k` counting slots created (a golden-ratio Weyl sequence):
//! deterministic, no RNG, and by the three-gap theorem any number of slots
//! created together are spread almost perfectly evenly, so 10,000 checks
//! never fire at once. Later probes keep that phase (start-to-start
//! scheduling). `warmup` adds a hash-derived fraction of itself.
//!
//! **Timing.** Start-to-start: the next probe starts `interval` after the
//! previous one started (`delay_before_retry` instead while an Up check is
//! counting failures), or at once if the previous one ran longer. A probe
//! that has not reported `timeout` after its start has failed; the engine
//! enforces this itself and ignores the late result. So with
//! `timeout ≤ interval` and `delay_before_retry ≤ interval`, a failure is
//! detected at most `fall × interval + timeout` after it happens.
//!
//! **Concurrency.** [`Engine::set_max_in_flight`] caps the probes in
//! flight (each holds a socket or a process, so 10,000 probes must not
//! exceed `RLIMIT_NOFILE`). A probe due while the cap is reached waits in
//! a FIFO queue and starts as soon as another one ends; it keeps its
//! nominal start, so its phase is kept. While the queue is not empty the
//! detection bound above stretches by the wait.
//!
//! **Thresholds.** See [`InitialState`] for the state before the first
//! result; after that `fall` consecutive failures take an Up check Down
//! and `rise` consecutive successes take a Down check Up. A result that
//! agrees with the current state resets the count.

use crate::spec::{CheckSpec, InitialState, ProbeSpec};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Identifies one check, as the caller numbers them (for example one per
/// virtual service × real server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckId(pub u64);

/// Identifies one probe attempt. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeId(u64);

impl ProbeId {
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Up or down: the one health type of halb, from the engine to every
/// consumer (the director, alerts, `halb list` as `"up"`/`"down"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub ok: bool,
    /// Why, for logs and transitions ("HTTP 500", "connection refused").
    pub reason: String,
    /// A weight reported by the probe (dynamic external checks).
    pub weight: Option<u32>,
}

impl ProbeOutcome {
    pub fn up(reason: impl Into<String>) -> Self {
        ProbeOutcome {
            ok: true,
            reason: reason.into(),
            weight: None,
        }
    }

    pub fn down(reason: impl Into<String>) -> Self {
        ProbeOutcome {
            ok: false,
            reason: reason.into(),
            weight: None,
        }
    }
}

/// What the engine asks of its shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run this probe and report with [`Engine::handle_result`]. The engine
    /// fails it by itself at `spec.timing.timeout`.
    StartProbe {
        probe: ProbeId,
        spec: Arc<CheckSpec>,
    },
    /// A check changed state.
    Transition {
        check: CheckId,
        from: Health,
        to: Health,
        reason: String,
    },
    /// A probe reported a new weight for a check.
    Weight { check: CheckId, weight: u32 },
}

/// The state of a check (shared by all checks of one probe slot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStatus {
    pub health: Health,
    /// Whether any result (or forced state) has been seen; before that,
    /// `health` is the configured [`InitialState`].
    pub probed: bool,
    /// Consecutive results against `health` (towards rise or fall).
    pub pending: u32,
    pub transitions: u64,
    pub successes: u64,
    pub failures: u64,
    pub last_reason: Option<String>,
    /// Last weight reported by the probe.
    pub weight: Option<u32>,
    /// How long the last probe took, from its start to its result (or
    /// to its timeout), as the engine saw it.
    pub last_duration: Option<Duration>,
}

type SlotId = u64;

#[derive(Debug, Clone, Copy)]
struct InFlight {
    id: ProbeId,
    /// When it was due: the next start is scheduled from here, so checks
    /// keep their phase even when the shell polls late.
    nominal: Instant,
    /// When it was started (for [`CheckStatus::last_duration`]).
    started: Instant,
    deadline: Instant,
}

#[derive(Debug)]
struct Slot {
    spec: Arc<CheckSpec>,
    checks: BTreeSet<CheckId>,
    status: CheckStatus,
    /// Results against `status.health` needed to flip it.
    threshold: u32,
    in_flight: Option<InFlight>,
    /// Generation of the slot's one live timer; older heap entries are stale.
    generation: u64,
}

/// The check engine. See the module documentation.
#[derive(Debug, Default)]
pub struct Engine {
    slots: HashMap<SlotId, Slot>,
    by_spec: HashMap<Arc<CheckSpec>, SlotId>,
    checks: HashMap<CheckId, SlotId>,
    in_flight: HashMap<ProbeId, SlotId>,
    /// (when, slot, generation): a start when the slot is idle, the
    /// deadline when it has a probe in flight.
    timers: BinaryHeap<Reverse<(Instant, SlotId, u64)>>,
    actions: VecDeque<Action>,
    next_slot: SlotId,
    next_probe: u64,
    /// Slots created so far: the index into the spreading sequence.
    spread_index: u64,
    now: Option<Instant>,
    /// Most probes in flight at once; `None`: no cap.
    max_in_flight: Option<usize>,
    /// Starts that came due while the cap was reached, oldest first:
    /// (nominal start, slot, generation).
    waiting: VecDeque<(Instant, SlotId, u64)>,
    /// Calls since the last full invariant sweep (debug builds).
    #[cfg(debug_assertions)]
    unswept: usize,
}

impl Engine {
    pub fn new() -> Self {
        Self::default()
    }

    /// Caps the probes in flight at `max` (at least 1); `None` removes the
    /// cap. See the module documentation.
    pub fn set_max_in_flight(&mut self, max: Option<usize>) {
        self.max_in_flight = max.map(|m| m.max(1));
    }

    fn at_cap(&self) -> bool {
        self.max_in_flight
            .is_some_and(|max| self.in_flight.len() >= max)
    }

    /// Replaces the set of checks. Checks whose spec is unchanged keep
    /// their state and schedule; new ones start at their
    /// [`InitialState`] (or join the slot of an equal spec); removed ones
    /// are forgotten, and results of their probes ignored. With duplicate
    /// ids the last one wins.
    pub fn handle_checks(
        &mut self,
        checks: impl IntoIterator<Item = (CheckId, CheckSpec)>,
        now: Instant,
    ) {
        self.advance(now);
        let wanted: HashMap<CheckId, CheckSpec> = checks.into_iter().collect();
        let existing: Vec<(CheckId, SlotId)> = self.checks.iter().map(|(c, s)| (*c, *s)).collect();
        for (check, slot) in existing {
            let keep = match (wanted.get(&check), self.slots.get(&slot)) {
                (Some(spec), Some(s)) => *spec == *s.spec,
                _ => false,
            };
            if !keep {
                self.detach(check, slot);
            }
        }
        let mut added: Vec<(CheckId, CheckSpec)> = wanted
            .into_iter()
            .filter(|(c, _)| !self.checks.contains_key(c))
            .collect();
        added.sort_by_key(|(c, _)| *c);
        for (check, spec) in added {
            let slot = match self.by_spec.get(&spec) {
                Some(slot) => *slot,
                None => self.create_slot(spec, now),
            };
            if let Some(s) = self.slots.get_mut(&slot) {
                s.checks.insert(check);
            }
            self.checks.insert(check, slot);
        }
        let checks = &self.checks;
        self.actions.retain(|a| match a {
            Action::Transition { check, .. } | Action::Weight { check, .. } => {
                checks.contains_key(check)
            }
            Action::StartProbe { .. } => true,
        });
        self.debug_sweep();
    }

    /// Time passed: advances the engine's clock to `now` (never back).
    /// What came due is then returned by [`Engine::poll_action`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        self.debug_sweep();
    }

    /// The next action due at the engine's current time (the latest `now`
    /// given to a `handle_*` input), if any: queued transitions first, then
    /// timeouts of probes in flight, then probes to start. `None` before
    /// any time was given.
    pub fn poll_action(&mut self) -> Option<Action> {
        let now = self.now?;
        loop {
            if let Some(action) = self.actions.pop_front() {
                return Some(action);
            }
            // Queued starts go first, oldest first, while there is room.
            if !self.at_cap() {
                if let Some((at, slot_id, generation)) = self.waiting.pop_front() {
                    if let Some(start) = self.start(slot_id, generation, at, now) {
                        return Some(start);
                    }
                    continue;
                }
            }
            let Some(Reverse((at, slot_id, generation))) = self.timers.peek().copied() else {
                self.debug_sweep();
                return None;
            };
            if at > now {
                self.debug_sweep();
                return None;
            }
            self.timers.pop();
            let at_cap = self.at_cap();
            let Some(slot) = self.slots.get_mut(&slot_id) else {
                continue;
            };
            if slot.generation != generation {
                continue;
            }
            match slot.in_flight {
                Some(flight) => {
                    self.in_flight.remove(&flight.id);
                    let outcome = timed_out(&slot.spec);
                    self.complete(slot_id, flight, outcome, now);
                }
                None if at_cap => self.waiting.push_back((at, slot_id, generation)),
                None => {
                    if let Some(start) = self.start(slot_id, generation, at, now) {
                        return Some(start);
                    }
                }
            }
        }
    }

    /// Starts the probe of an idle slot whose start (nominally `at`) is
    /// due; `None` when the slot is gone or `generation` is stale.
    fn start(
        &mut self,
        slot_id: SlotId,
        generation: u64,
        at: Instant,
        now: Instant,
    ) -> Option<Action> {
        let slot = self.slots.get_mut(&slot_id)?;
        if slot.generation != generation || slot.in_flight.is_some() {
            return None;
        }
        let id = ProbeId(self.next_probe);
        self.next_probe += 1;
        let deadline = now + slot.spec.timing.timeout;
        slot.in_flight = Some(InFlight {
            id,
            nominal: at,
            started: now,
            deadline,
        });
        slot.generation += 1;
        self.timers
            .push(Reverse((deadline, slot_id, slot.generation)));
        self.in_flight.insert(id, slot_id);
        Some(Action::StartProbe {
            probe: id,
            spec: slot.spec.clone(),
        })
    }

    /// When [`Engine::poll_action`] next has something to do (call
    /// [`Engine::handle_timeout`] then); `None` when
    /// there are no probed checks. Never earlier than the last `now` unless
    /// an action is already due.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if !self.actions.is_empty() || (!self.waiting.is_empty() && !self.at_cap()) {
            return self.now;
        }
        while let Some(Reverse((at, slot_id, generation))) = self.timers.peek().copied() {
            match self.slots.get(&slot_id) {
                Some(slot) if slot.generation == generation => return Some(at),
                _ => {
                    self.timers.pop();
                }
            }
        }
        None
    }

    /// A probe reported. Returns false (and changes nothing) when the
    /// probe is unknown: already timed out, or its check was removed. A
    /// result at or after the probe's deadline counts as a timeout even if
    /// the engine has not been polled since.
    pub fn handle_result(&mut self, probe: ProbeId, outcome: ProbeOutcome, now: Instant) -> bool {
        self.advance(now);
        let Some(slot_id) = self.in_flight.remove(&probe) else {
            self.debug_sweep();
            return false;
        };
        let Some((flight, spec)) = self
            .slots
            .get(&slot_id)
            .and_then(|s| Some((s.in_flight?, &s.spec)))
        else {
            self.debug_sweep();
            return false;
        };
        let outcome = if now >= flight.deadline {
            timed_out(spec)
        } else {
            outcome
        };
        self.complete(slot_id, flight, outcome, now);
        self.debug_sweep();
        true
    }

    /// Health of a check; `None` for an unknown check.
    pub fn health(&self, check: CheckId) -> Option<Health> {
        self.status(check).map(|s| s.health)
    }

    /// Full state of a check; `None` for an unknown check.
    pub fn status(&self, check: CheckId) -> Option<&CheckStatus> {
        let slot = self.checks.get(&check)?;
        self.slots.get(slot).map(|s| &s.status)
    }

    /// Number of checks.
    pub fn checks(&self) -> usize {
        self.checks.len()
    }

    /// Number of distinct probes (slots), after sharing.
    pub fn probes(&self) -> usize {
        self.slots.len()
    }

    /// Number of probes in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Number of probes due but waiting for the concurrency cap (stale
    /// entries of removed checks included until they are skipped).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Asserts that the engine's cross-indexed state is consistent; panics
    /// otherwise. O(checks + slots + timers + waiting). Debug builds call
    /// it by themselves (see the module documentation); tests and
    /// simulations may call it at any time.
    pub fn check_invariants(&self) {
        self.check_sizes();
        for (spec, id) in &self.by_spec {
            let slot = self.slots.get(id);
            assert!(
                slot.is_some_and(|s| Arc::ptr_eq(&s.spec, spec)),
                "by_spec names slot {id}, which does not hold that spec"
            );
        }
        let mut attached = 0;
        for (id, slot) in &self.slots {
            assert_eq!(
                self.by_spec.get(&slot.spec),
                Some(id),
                "slot {id} is not the slot of its spec"
            );
            assert!(!slot.checks.is_empty(), "slot {id} has no checks");
            for check in &slot.checks {
                assert_eq!(
                    self.checks.get(check),
                    Some(id),
                    "{check:?} is in slot {id} but not mapped to it"
                );
            }
            attached += slot.checks.len();
            let forced = matches!(slot.spec.probe, ProbeSpec::On | ProbeSpec::Off);
            if let Some(flight) = slot.in_flight {
                assert!(!forced, "forced slot {id} has a probe in flight");
                assert_eq!(
                    self.in_flight.get(&flight.id),
                    Some(id),
                    "slot {id}'s probe in flight is not indexed"
                );
            }
            let status = &slot.status;
            assert!(
                status.pending < slot.threshold.max(1),
                "slot {id} has {} results pending against a threshold of {}",
                status.pending,
                slot.threshold
            );
            if !status.probed {
                assert_eq!(
                    (status.successes, status.failures, status.transitions),
                    (0, 0, 0),
                    "slot {id} counts results but was never probed"
                );
            }
        }
        assert_eq!(attached, self.checks.len(), "checks attached to no slot");
        for (probe, id) in &self.in_flight {
            let flight = self.slots.get(id).and_then(|s| s.in_flight);
            assert_eq!(
                flight.map(|f| f.id),
                Some(*probe),
                "{probe:?} indexed in flight in slot {id}, which is not running it"
            );
        }
        // Every probed slot has exactly one live timer (the heap or the
        // waiting queue, at its current generation); stale entries of
        // removed slots or older generations are allowed. A slot with a
        // probe in flight has its deadline as that timer.
        let mut live: HashMap<SlotId, usize> = HashMap::new();
        let timers = self.timers.iter().map(|Reverse(t)| (*t, false));
        let waiting = self.waiting.iter().map(|t| (*t, true));
        for ((at, id, generation), queued) in timers.chain(waiting) {
            let Some(slot) = self.slots.get(&id) else {
                continue;
            };
            if slot.generation != generation {
                continue;
            }
            assert!(
                generation > 0 || slot.in_flight.is_none(),
                "slot {id} has a probe in flight at generation 0"
            );
            if let Some(flight) = slot.in_flight {
                assert!(!queued, "slot {id} waits to start while in flight");
                assert_eq!(
                    at, flight.deadline,
                    "slot {id}'s live timer is not its deadline"
                );
            }
            *live.entry(id).or_default() += 1;
        }
        for (id, slot) in &self.slots {
            let forced = matches!(slot.spec.probe, ProbeSpec::On | ProbeSpec::Off);
            let want = usize::from(!forced);
            assert_eq!(
                live.get(id).copied().unwrap_or(0),
                want,
                "slot {id} has the wrong number of live timers"
            );
        }
        for action in &self.actions {
            match action {
                Action::Transition { check, .. } | Action::Weight { check, .. } => assert!(
                    self.checks.contains_key(check),
                    "an action is queued for unknown {check:?}"
                ),
                Action::StartProbe { .. } => panic!("a probe start is queued"),
            }
        }
    }

    /// The O(1) part of [`Engine::check_invariants`].
    fn check_sizes(&self) {
        assert_eq!(
            self.by_spec.len(),
            self.slots.len(),
            "by_spec and slots differ"
        );
        assert!(
            self.checks.len() >= self.slots.len(),
            "a slot without checks"
        );
        assert!(
            self.in_flight.len() <= self.slots.len(),
            "more probes in flight than slots"
        );
    }

    /// Debug builds: the invariant sweep after an input; in full on every
    /// call up to [`SWEEP_SMALL`] entries, then every ⌈size / 2⌉-th call
    /// (see the module documentation).
    #[cfg(debug_assertions)]
    fn debug_sweep(&mut self) {
        self.check_sizes();
        let size = self.checks.len() + self.slots.len() + self.timers.len() + self.waiting.len();
        self.unswept += 1;
        if size <= SWEEP_SMALL || self.unswept.saturating_mul(2) >= size {
            self.unswept = 0;
            self.check_invariants();
        }
    }

    #[cfg(not(debug_assertions))]
    #[inline(always)]
    fn debug_sweep(&mut self) {}

    fn advance(&mut self, now: Instant) {
        self.now = Some(self.now.map_or(now, |n| n.max(now)));
    }

    fn create_slot(&mut self, spec: CheckSpec, now: Instant) -> SlotId {
        let id = self.next_slot;
        self.next_slot += 1;
        let timing = spec.timing;
        let (health, threshold) = match timing.initial {
            InitialState::FullyUp => (Health::Up, timing.fall),
            InitialState::Up => (Health::Up, 1),
            InitialState::Down => (Health::Down, 1),
            InitialState::FullyDown => (Health::Down, timing.rise),
        };
        let forced = match spec.probe {
            ProbeSpec::On => Some(Health::Up),
            ProbeSpec::Off => Some(Health::Down),
            _ => None,
        };
        let status = CheckStatus {
            health: forced.unwrap_or(health),
            probed: forced.is_some(),
            pending: 0,
            transitions: 0,
            successes: 0,
            failures: 0,
            last_reason: forced.map(|h| format!("forced {h}")),
            weight: None,
            last_duration: None,
        };
        let spec = Arc::new(spec);
        if forced.is_none() {
            let offset = scale(weyl(self.spread_index), timing.interval)
                + scale(splitmix(spec_hash(&spec)), timing.warmup);
            self.spread_index += 1;
            self.timers.push(Reverse((now + offset, id, 0)));
        }
        self.by_spec.insert(spec.clone(), id);
        self.slots.insert(
            id,
            Slot {
                spec,
                checks: BTreeSet::new(),
                status,
                threshold,
                in_flight: None,
                generation: 0,
            },
        );
        id
    }

    fn detach(&mut self, check: CheckId, slot_id: SlotId) {
        self.checks.remove(&check);
        let Some(slot) = self.slots.get_mut(&slot_id) else {
            return;
        };
        slot.checks.remove(&check);
        if slot.checks.is_empty() {
            if let Some(flight) = slot.in_flight {
                self.in_flight.remove(&flight.id);
            }
            self.by_spec.remove(&slot.spec);
            self.slots.remove(&slot_id);
        }
    }

    /// Applies a result (or a timeout) and schedules the next start.
    fn complete(&mut self, slot_id: SlotId, flight: InFlight, outcome: ProbeOutcome, now: Instant) {
        let Some(slot) = self.slots.get_mut(&slot_id) else {
            return;
        };
        let timing = slot.spec.timing;
        slot.in_flight = None;
        slot.generation += 1;
        let status = &mut slot.status;
        status.probed = true;
        status.last_duration = Some(now.saturating_duration_since(flight.started));
        if outcome.ok {
            status.successes += 1;
        } else {
            status.failures += 1;
        }
        if outcome.ok {
            if let Some(weight) = outcome.weight.filter(|w| status.weight != Some(*w)) {
                status.weight = Some(weight);
                for check in &slot.checks {
                    self.actions.push_back(Action::Weight {
                        check: *check,
                        weight,
                    });
                }
            }
        }
        let against = outcome.ok == (status.health == Health::Down);
        if against {
            status.pending += 1;
            if status.pending >= slot.threshold {
                let from = status.health;
                let to = if outcome.ok { Health::Up } else { Health::Down };
                status.health = to;
                status.pending = 0;
                status.transitions += 1;
                slot.threshold = if to == Health::Up {
                    timing.fall
                } else {
                    timing.rise
                };
                for check in &slot.checks {
                    self.actions.push_back(Action::Transition {
                        check: *check,
                        from,
                        to,
                        reason: outcome.reason.clone(),
                    });
                }
            }
        } else {
            status.pending = 0;
            slot.threshold = match status.health {
                Health::Up => timing.fall,
                Health::Down => timing.rise,
            };
        }
        // Retrying: an Up check counting failures towards `fall`.
        let retrying = !outcome.ok && status.health == Health::Up;
        status.last_reason = Some(outcome.reason);
        let delay = if retrying {
            timing.delay_before_retry
        } else {
            timing.interval
        };
        let next = (flight.nominal + delay).max(now);
        self.timers.push(Reverse((next, slot_id, slot.generation)));
    }
}

/// Up to this many entries (checks + slots + timers + waiting), debug
/// builds sweep the invariants in full after every input.
#[cfg(debug_assertions)]
const SWEEP_SMALL: usize = 512;

fn timed_out(spec: &CheckSpec) -> ProbeOutcome {
    ProbeOutcome::down(format!("timed out after {:?}", spec.timing.timeout))
}

/// `frac(k·φ)` as a 64-bit fraction: the golden-ratio Weyl sequence.
fn weyl(k: u64) -> u64 {
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15; // 2^64 / φ
    k.wrapping_mul(GOLDEN)
}

/// `fraction / 2^64` of `d`.
fn scale(fraction: u64, d: Duration) -> Duration {
    let nanos = (u128::from(fraction) * d.as_nanos()) >> 64;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// FNV-1a: deterministic across runs (unlike `RandomState`).
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn spec_hash(spec: &CheckSpec) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    spec.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests;
