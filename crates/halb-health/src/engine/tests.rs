use super::*;
use crate::spec::{ProbeSpec, Timing};
use proptest::prelude::*;
use std::net::SocketAddr;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn timing(rise: u32, fall: u32, initial: InitialState) -> Timing {
    Timing {
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        rise,
        fall,
        delay_before_retry: Duration::from_secs(1),
        warmup: Duration::ZERO,
        initial,
    }
}

fn tcp(port: u16, timing: Timing) -> CheckSpec {
    CheckSpec {
        target: addr(port),
        probe: ProbeSpec::Tcp,
        timing,
    }
}

/// Runs until the next StartProbe, returning it and the other actions seen.
fn next_start(engine: &mut Engine, now: &mut Instant) -> (ProbeId, Arc<CheckSpec>, Vec<Action>) {
    let mut others = Vec::new();
    loop {
        engine.handle_timeout(*now);
        while let Some(a) = engine.poll_action() {
            match a {
                Action::StartProbe { probe, spec } => return (probe, spec, others),
                other => others.push(other),
            }
        }
        let t = engine.poll_timeout().expect("a timer");
        assert!(t > *now, "poll_timeout in the past with nothing due");
        *now = t;
    }
}

fn drain(engine: &mut Engine, now: Instant) -> Vec<Action> {
    engine.handle_timeout(now);
    std::iter::from_fn(|| engine.poll_action()).collect()
}

#[test]
fn first_probe_is_within_one_interval_and_result_flips_down_initial() {
    let t0 = Instant::now();
    let mut e = Engine::new();
    e.handle_checks([(CheckId(1), tcp(1, timing(2, 2, InitialState::Down)))], t0);
    assert_eq!(e.health(CheckId(1)), Some(Health::Down));
    assert!(!e.status(CheckId(1)).unwrap().probed);
    let mut now = t0;
    let (p, spec, _) = next_start(&mut e, &mut now);
    assert!(now - t0 < spec.timing.interval);
    assert!(e.handle_result(p, ProbeOutcome::up("connected"), now));
    let acts = drain(&mut e, now);
    assert_eq!(
        acts,
        vec![Action::Transition {
            check: CheckId(1),
            from: Health::Down,
            to: Health::Up,
            reason: "connected".into()
        }]
    );
    // Now Up: it takes `fall` = 2 failures.
    let (p, _, _) = next_start(&mut e, &mut now);
    e.handle_result(p, ProbeOutcome::down("refused"), now);
    assert!(drain(&mut e, now).is_empty());
    let (p, _, _) = next_start(&mut e, &mut now);
    e.handle_result(p, ProbeOutcome::down("refused"), now);
    assert_eq!(drain(&mut e, now).len(), 1);
    let st = e.status(CheckId(1)).unwrap();
    assert_eq!(
        (st.health, st.transitions, st.failures, st.successes),
        (Health::Down, 2, 2, 1)
    );
    // A stale or repeated result is ignored.
    assert!(!e.handle_result(p, ProbeOutcome::up("late"), now));
}

#[test]
fn timeout_is_enforced_and_late_result_ignored() {
    let t0 = Instant::now();
    let mut e = Engine::new();
    e.handle_checks(
        [(CheckId(1), tcp(1, timing(1, 1, InitialState::FullyUp)))],
        t0,
    );
    let mut now = t0;
    let (p, _, _) = next_start(&mut e, &mut now);
    let started = now;
    assert_eq!(e.poll_timeout(), Some(started + Duration::from_millis(500)));
    now = started + Duration::from_millis(500);
    let acts = drain(&mut e, now);
    assert!(
        matches!(&acts[..], [Action::Transition { to: Health::Down, reason, .. }] if reason.contains("timed out after 500ms"))
    );
    assert!(!e.handle_result(p, ProbeOutcome::up("late"), now));
    assert_eq!(e.in_flight(), 0);
    // The next start keeps the phase: one interval after the first start.
    assert_eq!(e.poll_timeout(), Some(started + Duration::from_secs(1)));
}

#[test]
fn last_duration_is_from_start_to_result_or_timeout() {
    let t0 = Instant::now();
    let mut e = Engine::new();
    e.handle_checks(
        [(CheckId(1), tcp(1, timing(1, 1, InitialState::FullyUp)))],
        t0,
    );
    assert_eq!(e.status(CheckId(1)).unwrap().last_duration, None);
    let mut now = t0;
    let (p, _, _) = next_start(&mut e, &mut now);
    now += Duration::from_millis(120);
    assert!(e.handle_result(p, ProbeOutcome::up("connected"), now));
    let st = e.status(CheckId(1)).unwrap();
    assert_eq!(st.last_duration, Some(Duration::from_millis(120)));
    assert_eq!((st.successes, st.failures), (1, 0));
    // A timeout: the timeout itself, counted as a failure.
    let (_, spec, _) = next_start(&mut e, &mut now);
    now += spec.timing.timeout;
    drain(&mut e, now);
    let st = e.status(CheckId(1)).unwrap();
    assert_eq!(st.last_duration, Some(spec.timing.timeout));
    assert_eq!((st.successes, st.failures), (1, 1));
}

#[test]
fn delay_before_retry_while_counting_failures() {
    let t0 = Instant::now();
    let mut e = Engine::new();
    let mut t = timing(1, 3, InitialState::FullyUp);
    t.delay_before_retry = Duration::from_millis(200);
    e.handle_checks([(CheckId(1), tcp(1, t))], t0);
    let mut now = t0;
    let (p, _, _) = next_start(&mut e, &mut now);
    let s1 = now;
    e.handle_result(p, ProbeOutcome::down("x"), now);
    let (p, _, _) = next_start(&mut e, &mut now);
    assert_eq!(now - s1, Duration::from_millis(200));
    e.handle_result(p, ProbeOutcome::up("ok"), now);
    let s2 = now;
    let (_, _, _) = next_start(&mut e, &mut now);
    assert_eq!(now - s2, Duration::from_secs(1));
}

#[test]
fn identical_checks_share_one_probe_and_diff_keeps_state() {
    let t0 = Instant::now();
    let mut e = Engine::new();
    let spec = tcp(80, timing(1, 1, InitialState::Down));
    e.handle_checks(
        [
            (CheckId(1), spec.clone()),
            (CheckId(2), spec.clone()),
            (CheckId(3), tcp(81, spec.timing)),
        ],
        t0,
    );
    assert_eq!((e.checks(), e.probes()), (3, 2));
    let mut now = t0;
    // Bring port 80 up.
    loop {
        let (p, s, _) = next_start(&mut e, &mut now);
        if s.target.port() == 80 {
            e.handle_result(p, ProbeOutcome::up("ok"), now);
            break;
        }
        e.handle_result(p, ProbeOutcome::down("refused"), now);
    }
    let ups: Vec<CheckId> = drain(&mut e, now)
        .into_iter()
        .filter_map(|a| match a {
            Action::Transition {
                check,
                to: Health::Up,
                ..
            } => Some(check),
            _ => None,
        })
        .collect();
    assert_eq!(ups, vec![CheckId(1), CheckId(2)]);
    // Reload: check 2 removed, 4 joins the port-80 slot and inherits Up,
    // check 3 changes its timing (new slot, fresh state).
    let mut t3 = spec.timing;
    t3.rise = 5;
    e.handle_checks(
        [
            (CheckId(1), spec.clone()),
            (CheckId(4), spec.clone()),
            (CheckId(3), tcp(81, t3)),
        ],
        now,
    );
    assert_eq!(e.health(CheckId(1)), Some(Health::Up));
    assert_eq!(e.health(CheckId(4)), Some(Health::Up));
    assert_eq!(e.health(CheckId(2)), None);
    assert_eq!(e.status(CheckId(1)).unwrap().transitions, 1);
    assert_eq!(e.probes(), 2);
    // Removing everything drops the in-flight bookkeeping too.
    e.handle_checks([], now);
    assert_eq!((e.checks(), e.probes(), e.in_flight()), (0, 0, 0));
    assert_eq!(e.poll_timeout(), None);
}

#[test]
fn forced_states_are_never_probed() {
    let t0 = Instant::now();
    let mut e = Engine::new();
    let mut on = tcp(1, Timing::default());
    on.probe = ProbeSpec::On;
    let mut off = tcp(1, Timing::default());
    off.probe = ProbeSpec::Off;
    e.handle_checks([(CheckId(1), on), (CheckId(2), off)], t0);
    assert_eq!(e.health(CheckId(1)), Some(Health::Up));
    assert_eq!(e.health(CheckId(2)), Some(Health::Down));
    assert_eq!(e.poll_timeout(), None);
    e.handle_timeout(t0 + Duration::from_secs(3600));
    assert_eq!(e.poll_action(), None);
}

#[test]
fn dynamic_weight_is_reported_once_per_change() {
    let t0 = Instant::now();
    let mut e = Engine::new();
    e.handle_checks(
        [(CheckId(7), tcp(1, timing(1, 1, InitialState::FullyUp)))],
        t0,
    );
    let mut now = t0;
    let mut weights = Vec::new();
    for w in [5, 5, 3] {
        let (p, _, _) = next_start(&mut e, &mut now);
        let mut o = ProbeOutcome::up("exit");
        o.weight = Some(w);
        e.handle_result(p, o, now);
        weights.extend(drain(&mut e, now));
    }
    assert_eq!(
        weights,
        vec![
            Action::Weight {
                check: CheckId(7),
                weight: 5
            },
            Action::Weight {
                check: CheckId(7),
                weight: 3
            }
        ]
    );
}

#[test]
fn initial_up_falls_on_first_failure() {
    let t0 = Instant::now();
    let mut e = Engine::new();
    e.handle_checks([(CheckId(1), tcp(1, timing(3, 3, InitialState::Up)))], t0);
    let mut now = t0;
    let (p, _, _) = next_start(&mut e, &mut now);
    e.handle_result(p, ProbeOutcome::down("refused"), now);
    assert_eq!(e.health(CheckId(1)), Some(Health::Down));
    // From there, `rise` = 3 successes.
    for i in 0..3 {
        assert_eq!(e.health(CheckId(1)), Some(Health::Down), "after {i}");
        let (p, _, _) = next_start(&mut e, &mut now);
        e.handle_result(p, ProbeOutcome::up("ok"), now);
    }
    assert_eq!(e.health(CheckId(1)), Some(Health::Up));
}

/// Reference model of rise/fall from a fully settled initial state.
fn model(initial: Health, rise: u32, fall: u32, results: &[bool]) -> Vec<(usize, Health)> {
    let mut h = initial;
    let mut run = 0;
    let mut flips = Vec::new();
    for (i, ok) in results.iter().enumerate() {
        let against = *ok == (h == Health::Down);
        if against {
            run += 1;
            let need = if h == Health::Up { fall } else { rise };
            if run == need {
                h = if *ok { Health::Up } else { Health::Down };
                run = 0;
                flips.push((i, h));
            }
        } else {
            run = 0;
        }
    }
    flips
}

proptest! {
    #[test]
    fn flips_only_after_exactly_rise_or_fall(
        rise in 1u32..5,
        fall in 1u32..5,
        start_up in any::<bool>(),
        // None: the probe never reports (times out).
        results in proptest::collection::vec(proptest::option::weighted(0.8, any::<bool>()), 0..60),
    ) {
        let initial = if start_up { InitialState::FullyUp } else { InitialState::FullyDown };
        let t0 = Instant::now();
        let mut e = Engine::new();
        e.handle_checks([(CheckId(1), tcp(1, timing(rise, fall, initial)))], t0);
        let mut now = t0;
        let mut flips = Vec::new();
        for (i, r) in results.iter().enumerate() {
            let (p, _, acts) = next_start(&mut e, &mut now);
            for a in acts {
                if let Action::Transition { to, .. } = a { flips.push((i - 1, to)); }
            }
            if let Some(ok) = r {
                now += Duration::from_millis(10);
                let o = if *ok { ProbeOutcome::up("ok") } else { ProbeOutcome::down("no") };
                prop_assert!(e.handle_result(p, o, now));
            }
        }
        // Collect the last result's transition (or timeout).
        now += Duration::from_secs(1);
        for a in drain(&mut e, now) {
            if let Action::Transition { to, .. } = a { flips.push((results.len() - 1, to)); }
        }
        let bools: Vec<bool> = results.iter().map(|r| r.unwrap_or(false)).collect();
        let start = if start_up { Health::Up } else { Health::Down };
        prop_assert_eq!(flips, model(start, rise, fall, &bools));
    }

    #[test]
    fn never_starts_a_probe_in_flight_and_timeouts_are_sane(
        ops in proptest::collection::vec((0u8..4, 0u64..1500, any::<bool>(), 0u16..6), 1..200),
        cap in proptest::option::of(1usize..4),
    ) {
        let t0 = Instant::now();
        let mut e = Engine::new();
        e.set_max_in_flight(cap);
        let mut now = t0;
        let specs = |mask: u16| -> Vec<(CheckId, CheckSpec)> {
            (0..6u16)
                .filter(|i| mask & (1 << i) != 0 || *i < 2)
                .map(|i| (CheckId(u64::from(i)), tcp(1 + i % 4, timing(2, 2, InitialState::Down))))
                .collect()
        };
        e.handle_checks(specs(0x3f), now);
        // spec → (probe, deadline) for probes the engine considers in flight.
        let mut flying: HashMap<Arc<CheckSpec>, (ProbeId, Instant)> = HashMap::new();
        let mut all_started: Vec<ProbeId> = Vec::new();
        for (op, ms, ok, mask) in ops {
            match op {
                0 => now += Duration::from_millis(ms),
                1 => {
                    // Answer some in-flight probe.
                    if let Some((spec, (p, deadline))) = flying.iter().next().map(|(s, v)| (s.clone(), *v)) {
                        let accepted = e.handle_result(p, if ok { ProbeOutcome::up("ok") } else { ProbeOutcome::down("no") }, now);
                        if now < deadline {
                            prop_assert!(accepted, "a result in time was refused");
                        }
                        flying.remove(&spec);
                    }
                }
                2 => {
                    let next = specs(mask);
                    flying.retain(|s, _| next.iter().any(|(_, n)| n == &**s));
                    e.handle_checks(next, now);
                }
                _ => {
                    if let Some(p) = all_started.get(ms as usize % all_started.len().max(1)) {
                        // Duplicate or stale reports never break anything.
                        let _ = e.handle_result(*p, ProbeOutcome::down("dup"), now);
                        flying.retain(|_, (q, _)| q != p);
                    }
                }
            }
            e.handle_timeout(now);
            while let Some(a) = e.poll_action() {
                if let Action::StartProbe { probe, spec } = a {
                    if let Some((_, deadline)) = flying.get(&spec) {
                        prop_assert!(now >= *deadline, "probe started while the same probe is in flight");
                    }
                    flying.insert(spec.clone(), (probe, now + spec.timing.timeout));
                    all_started.push(probe);
                }
            }
            if let Some(t) = e.poll_timeout() {
                prop_assert!(t > now, "nothing due but poll_timeout is not in the future");
            }
            prop_assert!(e.in_flight() <= e.probes());
            prop_assert!(e.in_flight() <= cap.unwrap_or(usize::MAX), "cap exceeded");
        }
    }
}

proptest! {
    /// Random check sets (shared specs, changed timings, forced states,
    /// removed and re-added checks), results (in time, late, stale,
    /// duplicated), clock steps and cap changes: the invariant sweep holds
    /// after every input (debug builds also run it inside the engine).
    #[test]
    fn cross_indexes_stay_consistent_under_random_inputs(
        ops in proptest::collection::vec(
            (0u8..5, 0u64..3000, any::<u16>(), any::<bool>()),
            1..300,
        ),
    ) {
        let t0 = Instant::now();
        let mut e = Engine::new();
        let mut now = t0;
        // Check i (of 8) uses one of 4 targets, one of 2 timings, and is
        // sometimes forced: many checks share a slot, and a reload moves
        // checks between slots.
        let specs = |mask: u16| -> Vec<(CheckId, CheckSpec)> {
            (0..8u16)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| {
                    let bits = mask >> 8;
                    let mut t = timing(1 + u32::from(bits & 1), 2, InitialState::Down);
                    if bits & (1 << (i % 4)) != 0 {
                        t.interval = Duration::from_millis(700);
                        t.timeout = Duration::from_millis(900);
                    }
                    let mut spec = tcp(1 + (i + bits) % 4, t);
                    if i == 7 && bits & 0x10 != 0 {
                        spec.probe = if bits & 0x20 != 0 { ProbeSpec::On } else { ProbeSpec::Off };
                    }
                    (CheckId(u64::from(i)), spec)
                })
                .collect()
        };
        let mut started: Vec<ProbeId> = Vec::new();
        for (op, x, mask, ok) in ops {
            match op {
                0 => {
                    now += Duration::from_millis(x);
                    e.handle_timeout(now);
                }
                1 => e.handle_checks(specs(mask), now),
                2 => e.set_max_in_flight(if ok { Some(usize::from(mask % 4)) } else { None }),
                _ => {
                    if let Some(p) = started.get(x as usize % started.len().max(1)) {
                        let outcome = if ok { ProbeOutcome::up("ok") } else { ProbeOutcome::down("no") };
                        let _ = e.handle_result(*p, outcome, now);
                    }
                }
            }
            e.check_invariants();
            while let Some(a) = e.poll_action() {
                match a {
                    Action::StartProbe { probe, .. } => started.push(probe),
                    Action::Transition { check, to, .. } => {
                        prop_assert_eq!(e.health(check), Some(to));
                    }
                    Action::Weight { check, .. } => prop_assert!(e.health(check).is_some()),
                }
            }
            e.check_invariants();
        }
    }
}

/// Virtual-time simulation: 10,000 checks, 1 s interval, probes answer in
/// 1 ms; starts are spread evenly, and after the back ends die each check
/// goes Down within `fall × interval + timeout`.
#[test]
fn simulation_10000_checks_spread_and_detection_delay() {
    const N: u64 = 10_000;
    let interval = Duration::from_secs(1);
    let t = Timing {
        interval,
        timeout: Duration::from_millis(300),
        rise: 2,
        fall: 3,
        delay_before_retry: interval,
        warmup: Duration::ZERO,
        initial: InitialState::FullyUp,
    };
    let t0 = Instant::now();
    let mut e = Engine::new();
    e.handle_checks(
        (0..N).map(|i| {
            let port = u16::try_from(1 + i % 60_000).unwrap();
            let ip = [10, 0, (i / 60_000) as u8, 1];
            (
                CheckId(i),
                CheckSpec {
                    target: SocketAddr::from((ip, port)),
                    probe: ProbeSpec::Tcp,
                    timing: t,
                },
            )
        }),
        t0,
    );
    assert_eq!(e.probes(), N as usize);
    let latency = Duration::from_millis(1);
    let death = t0 + Duration::from_millis(3_500);
    let end = death + Duration::from_secs(6);
    let mut now = t0;
    // (completion time, probe, ok) in a min-heap.
    let mut pending: BinaryHeap<Reverse<(Instant, ProbeId, bool)>> = BinaryHeap::new();
    let mut starts: Vec<Duration> = Vec::new();
    let mut down_at: HashMap<CheckId, Instant> = HashMap::new();
    while now < end {
        e.handle_timeout(now);
        while let Some(a) = e.poll_action() {
            match a {
                Action::StartProbe { probe, .. } => {
                    starts.push(now - t0);
                    if now < death {
                        pending.push(Reverse((now + latency, probe, true)));
                    } // after death: never answers, the engine times it out
                }
                Action::Transition {
                    check,
                    to: Health::Down,
                    ..
                } => {
                    down_at.entry(check).or_insert(now);
                }
                Action::Transition { .. } | Action::Weight { .. } => {}
            }
        }
        let next_timer = e.poll_timeout();
        let next_done = pending.peek().map(|Reverse((t, _, _))| *t);
        let next = match (next_timer, next_done) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap(),
        };
        assert!(next >= now);
        now = next;
        while let Some(Reverse((t, p, ok))) = pending.peek().copied() {
            if t > now {
                break;
            }
            pending.pop();
            let o = if ok {
                ProbeOutcome::up("ok")
            } else {
                ProbeOutcome::down("no")
            };
            assert!(e.handle_result(p, o, now));
        }
    }
    // Spread: in the first interval (before death), count starts per 10 ms.
    let window = Duration::from_millis(10);
    let windows = (interval.as_nanos() / window.as_nanos()) as u64;
    let fair = N.div_ceil(windows);
    let mut per_window = vec![0u64; windows as usize * 3];
    for s in starts.iter().filter(|s| **s < Duration::from_secs(3)) {
        per_window[(s.as_nanos() / window.as_nanos()) as usize] += 1;
    }
    let max = per_window.iter().copied().max().unwrap();
    assert!(
        max <= fair + 2,
        "max {max} starts in a 10 ms window, fair share {fair}"
    );
    // Detection.
    assert_eq!(down_at.len(), N as usize, "every check went down");
    let bound = interval * t.fall + t.timeout;
    let worst = down_at.values().map(|d| *d - death).max().unwrap();
    assert!(
        worst <= bound,
        "worst detection {worst:?} > bound {bound:?}"
    );
}

/// With a cap, probes never exceed it; with fast answers every check is
/// still probed once per interval, and with back ends that never answer the
/// queued probes still all run (slower) and every check goes down.
#[test]
fn concurrency_cap_is_never_exceeded_and_nothing_starves() {
    const N: u64 = 1_000;
    const CAP: usize = 20;
    let interval = Duration::from_secs(1);
    let t = Timing {
        interval,
        timeout: Duration::from_millis(100),
        rise: 1,
        fall: 2,
        delay_before_retry: interval,
        warmup: Duration::ZERO,
        initial: InitialState::FullyUp,
    };
    let t0 = Instant::now();
    let mut e = Engine::new();
    e.set_max_in_flight(Some(CAP));
    e.handle_checks((0..N).map(|i| (CheckId(i), tcp(1 + i as u16, t))), t0);
    let death = t0 + Duration::from_secs(3);
    let end = death + Duration::from_secs(30);
    let mut now = t0;
    let mut pending: BinaryHeap<Reverse<(Instant, ProbeId)>> = BinaryHeap::new();
    let mut per_check_before: HashMap<u16, u32> = HashMap::new();
    let mut down = 0usize;
    let mut max_flight = 0;
    while now < end && down < N as usize {
        e.handle_timeout(now);
        while let Some(a) = e.poll_action() {
            match a {
                Action::StartProbe { probe, spec } => {
                    if now >= t0 + interval && now < death {
                        *per_check_before.entry(spec.target.port()).or_default() += 1;
                    }
                    if now < death {
                        pending.push(Reverse((now + Duration::from_millis(5), probe)));
                    }
                }
                Action::Transition {
                    to: Health::Down, ..
                } => down += 1,
                _ => {}
            }
            max_flight = max_flight.max(e.in_flight());
        }
        assert!(e.in_flight() <= CAP);
        let next = match (e.poll_timeout(), pending.peek().map(|Reverse((t, _))| *t)) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap(),
        };
        now = next.max(now);
        while let Some(Reverse((t, p))) = pending.peek().copied() {
            if t > now {
                break;
            }
            pending.pop();
            e.handle_result(p, ProbeOutcome::up("ok"), now);
        }
    }
    assert_eq!(
        max_flight, CAP,
        "the cap was reached (hung probes) and held"
    );
    // Two full intervals before the death: every check probed twice.
    assert_eq!(per_check_before.len(), N as usize);
    assert!(per_check_before.values().all(|n| (2..=3).contains(n)));
    assert_eq!(down, N as usize, "every check went down despite the queue");
}

/// keepalived's `warmup`: each check's first probe comes after its place
/// in the interval plus a random share of the warm-up, so a director
/// starting with many checks does not probe them all in the first
/// interval; later probes keep the interval.
#[test]
fn warmup_delays_and_spreads_the_first_probes() {
    let t0 = Instant::now();
    let mut e = Engine::new();
    let mut t = timing(1, 1, InitialState::Down);
    t.warmup = Duration::from_secs(10);
    let n = 200u16;
    e.handle_checks(
        (0..n).map(|i| (CheckId(u64::from(i) + 1), tcp(1000 + i, t))),
        t0,
    );
    let mut now = t0;
    let mut first: std::collections::HashMap<u16, Duration> = std::collections::HashMap::new();
    let mut second: std::collections::HashMap<u16, Duration> = std::collections::HashMap::new();
    while second.len() < usize::from(n) {
        let (p, spec, _) = next_start(&mut e, &mut now);
        let port = spec.target.port();
        match first.entry(port) {
            std::collections::hash_map::Entry::Occupied(_) => {
                second.entry(port).or_insert(now - t0);
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(now - t0);
            }
        }
        assert!(e.handle_result(p, ProbeOutcome::up("connected"), now));
    }
    let bound = t.interval + t.warmup;
    assert!(first.values().all(|d| *d < bound), "{first:?}");
    let late = first
        .values()
        .filter(|d| **d > Duration::from_secs(5))
        .count();
    assert!(
        late >= usize::from(n) / 4,
        "only {late} of {n} first probes after 5 s: warm-up not applied"
    );
    // After the first, the interval: a second probe one interval on.
    for (port, d) in &second {
        assert_eq!(*d - first[port], t.interval, "port {port}");
    }
}
