//! Property test of the resource engine in virtual time: random groups,
//! and random sequences of role changes, agent results (failures, hard
//! errors, timeouts the engine enforces, stale ids), time advances and
//! operator commands. The engine's own invariant sweep runs after every
//! input (debug build); on top, an outside model checks:
//!
//! - at most one agent call in flight per group;
//! - a member starts only while its group's role is held and it is not
//!   banned, and only once every earlier member is known running;
//! - a member stops only once every later member is known stopped;
//! - a group is released only when all its members are known stopped
//!   (or it is unmanaged), and never while blocked;
//! - a blocked group's status is Blocked, never Stopped;
//! - fail counts and bans are never shown past their expiry.
#![allow(clippy::unwrap_used)]

use halb_resource::{
    Action, Agent, AgentResult, Command, Engine, Follows, GroupSpec, MemberSpec, OnFail, Op, OpId,
    State, OP_GRACE,
};
use proptest::prelude::*;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct MemberCfg {
    on_fail: OnFail,
    /// `start_on_fail`; `None`: from `start_failure_is_fatal`.
    start_on_fail: Option<OnFail>,
    interval_s: u64,
    timeout_s: u64,
}

#[derive(Debug, Clone)]
struct GroupCfg {
    members: Vec<MemberCfg>,
    threshold: u32,
    failure_timeout_s: Option<u64>,
    start_fatal: bool,
    managed: bool,
}

#[derive(Debug, Clone, Copy)]
enum Answer {
    Ok,
    NotRunning,
    Promoted,
    Generic,
    Hard,
    NotInstalled,
    Fatal,
    TimedOut,
    Error,
}

#[derive(Debug, Clone)]
enum Step {
    Role(usize, bool),
    Answer(usize, Answer),
    Stale(u64),
    Advance(u64),
    ToDeadline,
    Cleanup(Option<usize>),
    Maintenance(Option<usize>, bool),
    Restart(usize, usize),
    /// A reload: `false` changes settings (threshold, managed) in place,
    /// `true` a member (the group is stopped and replaced).
    Reload(usize, bool),
}

fn member_cfg() -> impl Strategy<Value = MemberCfg> {
    (
        prop_oneof![
            6 => Just(OnFail::Restart),
            1 => Just(OnFail::Stop),
            1 => Just(OnFail::Block),
            1 => Just(OnFail::Ignore),
            1 => Just(OnFail::Standby),
            1 => Just(OnFail::Move),
        ],
        prop_oneof![
            4 => Just(None),
            1 => prop::sample::select(OnFail::START.to_vec()).prop_map(Some),
        ],
        prop_oneof![Just(0u64), 1u64..10],
        1u64..20,
    )
        .prop_map(
            |(on_fail, start_on_fail, interval_s, timeout_s)| MemberCfg {
                on_fail,
                start_on_fail,
                interval_s,
                timeout_s,
            },
        )
}

fn group_cfg() -> impl Strategy<Value = GroupCfg> {
    (
        prop::collection::vec(member_cfg(), 1..4),
        0u32..4,
        prop::option::of(1u64..60),
        any::<bool>(),
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |(members, threshold, failure_timeout_s, start_fatal, managed)| GroupCfg {
                members,
                threshold,
                failure_timeout_s,
                start_fatal,
                managed,
            },
        )
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        8 => Just(Answer::Ok),
        4 => Just(Answer::NotRunning),
        1 => Just(Answer::Promoted),
        2 => Just(Answer::Generic),
        1 => Just(Answer::Hard),
        1 => Just(Answer::NotInstalled),
        1 => Just(Answer::Fatal),
        1 => Just(Answer::TimedOut),
        1 => Just(Answer::Error),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0usize..2, any::<bool>()).prop_map(|(g, a)| Step::Role(g, a)),
        12 => (0usize..4, answer()).prop_map(|(i, a)| Step::Answer(i, a)),
        1 => (0u64..1000).prop_map(Step::Stale),
        3 => (0u64..30_000).prop_map(Step::Advance),
        3 => Just(Step::ToDeadline),
        1 => prop::option::of(0usize..2).prop_map(Step::Cleanup),
        1 => (prop::option::of(0usize..2), any::<bool>()).prop_map(|(g, on)| Step::Maintenance(g, on)),
        1 => (0usize..2, 0usize..3).prop_map(|(g, m)| Step::Restart(g, m)),
        1 => (0usize..2, any::<bool>()).prop_map(|(g, m)| Step::Reload(g, m)),
    ]
}

fn result(a: Answer, timeout: Duration) -> AgentResult {
    match a {
        Answer::Ok => AgentResult::code(0),
        Answer::NotRunning => AgentResult::code(7),
        Answer::Promoted => AgentResult::code(8),
        Answer::Generic => AgentResult::code(1),
        Answer::Hard => AgentResult::code(2),
        Answer::NotInstalled => AgentResult::code(5),
        Answer::Fatal => AgentResult::code(6),
        Answer::TimedOut => AgentResult::timed_out(timeout),
        Answer::Error => AgentResult::error("cannot run"),
    }
}

fn specs(cfgs: &[GroupCfg]) -> Vec<GroupSpec> {
    cfgs.iter()
        .enumerate()
        .map(|(gi, c)| {
            let members = c
                .members
                .iter()
                .enumerate()
                .map(|(mi, m)| {
                    let mut s = MemberSpec::new(format!("m{mi}"), Agent::Lsb(format!("m{mi}")));
                    s.on_fail = m.on_fail;
                    s.start_on_fail = m.start_on_fail;
                    s.monitor.interval = Duration::from_secs(m.interval_s);
                    s.monitor.timeout = Duration::from_secs(m.timeout_s);
                    s.start_timeout = Duration::from_secs(m.timeout_s);
                    s.stop_timeout = Duration::from_secs(m.timeout_s);
                    s
                })
                .collect();
            let mut g = GroupSpec::new(
                format!("g{gi}"),
                Follows::Instance(format!("vi{gi}")),
                members,
            );
            g.migration_threshold = c.threshold;
            g.failure_timeout = c.failure_timeout_s.map(Duration::from_secs);
            g.start_failure_is_fatal = c.start_fatal;
            g.managed = c.managed;
            g
        })
        .collect()
}

/// What the outside world knows of a member, from the answers given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Belief {
    Unknown,
    Running,
    Stopped,
}

struct Flying {
    id: OpId,
    group: usize,
    member: usize,
    op: Op,
    timeout: Duration,
    deadline: Instant,
}

struct World {
    e: Engine,
    cfgs: Vec<GroupCfg>,
    now: Instant,
    flying: Vec<Flying>,
    belief: Vec<Vec<Belief>>,
    active: Vec<bool>,
    maint_group: Vec<bool>,
    maint_all: bool,
}

impl World {
    fn group_index(name: &str) -> usize {
        name[1..].parse().unwrap()
    }

    fn member_index(name: &str) -> usize {
        name[1..].parse().unwrap()
    }

    /// A failed monitor of this member changes nothing.
    fn ignored(&self, g: usize, m: usize) -> bool {
        self.cfgs[g].members[m].on_fail == OnFail::Ignore && !self.unmanaged(g)
    }

    fn unmanaged(&self, g: usize) -> bool {
        !self.cfgs[g].managed || self.maint_group[g] || self.maint_all
    }

    /// Takes the engine's actions, checking each.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        // Calls the engine gave up on are no longer in flight.
        let now = self.now;
        let mut gave_up = Vec::new();
        self.flying.retain(|f| {
            let keep = f.deadline > now;
            if !keep {
                gave_up.push((f.group, f.member, f.op));
            }
            keep
        });
        for (g, m, op) in gave_up {
            // A monitor that timed out with on_fail = ignore changes
            // nothing; anything else may have left it in any state.
            if !(op == Op::Monitor && self.ignored(g, m)) {
                self.belief[g][m] = Belief::Unknown;
            }
        }
        let status = self.e.status(self.now);
        while let Some(a) = self.e.poll_action() {
            match a {
                Action::Run {
                    id,
                    group,
                    member,
                    op,
                    timeout,
                    ..
                } => {
                    let g = Self::group_index(&group);
                    let m = Self::member_index(&member);
                    prop_assert!(
                        !self.flying.iter().any(|f| f.group == g),
                        "two calls in flight for {group}"
                    );
                    prop_assert!(
                        !self.unmanaged(g),
                        "{group} is unmanaged but {op} was called"
                    );
                    match op {
                        Op::Start => {
                            prop_assert!(
                                self.active[g],
                                "{group}/{member} started while not master"
                            );
                            prop_assert!(status[g].ban.is_none(), "{group} started while banned");
                            for j in 0..m {
                                prop_assert_eq!(
                                    self.belief[g][j],
                                    Belief::Running,
                                    "{}/{} started before m{} runs",
                                    group,
                                    member,
                                    j
                                );
                            }
                        }
                        Op::Stop => {
                            for j in m + 1..self.belief[g].len() {
                                prop_assert_eq!(
                                    self.belief[g][j],
                                    Belief::Stopped,
                                    "{}/{} stopped before m{}",
                                    group,
                                    member,
                                    j
                                );
                            }
                        }
                        Op::Probe | Op::Monitor => {}
                    }
                    self.flying.push(Flying {
                        id,
                        group: g,
                        member: m,
                        op,
                        timeout,
                        deadline: self.now + timeout + OP_GRACE,
                    });
                }
                Action::GroupReleased { group } => {
                    let g = Self::group_index(&group);
                    prop_assert!(!self.active[g], "{group} released while master");
                    prop_assert!(
                        status[g].blocked.is_none(),
                        "{group} released while blocked"
                    );
                    if !self.unmanaged(g) {
                        prop_assert!(
                            self.belief[g].iter().all(|b| *b == Belief::Stopped),
                            "{group} released with {:?}",
                            self.belief[g]
                        );
                    }
                }
                Action::Event(_) | Action::GiveUp { .. } | Action::BanLifted { .. } => {}
            }
        }
        self.check_status()
    }

    fn check_status(&self) -> Result<(), TestCaseError> {
        for (gi, s) in self.e.status(self.now).iter().enumerate() {
            if s.blocked.is_some() {
                prop_assert_eq!(s.state, State::Blocked);
            }
            if let Some(b) = &s.ban {
                prop_assert!(b.until.is_none_or(|u| u > self.now), "ban past its expiry");
            }
            if let Some(t) = self.cfgs[gi].failure_timeout_s {
                for m in &s.members {
                    if m.fail_count > 0 {
                        let f = m.last_failure.as_ref().unwrap();
                        prop_assert!(
                            f.ago_ms < t * 1000,
                            "{}/{}: fail count {} kept {} ms after its last failure (timeout {} s)",
                            s.name,
                            m.name,
                            m.fail_count,
                            f.ago_ms,
                            t
                        );
                    }
                }
            }
        }
        Ok(())
    }

    fn answer(&mut self, i: usize, a: Answer) -> Result<(), TestCaseError> {
        if self.flying.is_empty() {
            return Ok(());
        }
        let f = self.flying.remove(i % self.flying.len());
        let r = result(a, f.timeout);
        let fresh = self.e.handle_result(f.id, r.clone(), self.now);
        prop_assert!(fresh, "a call in flight before its deadline is not stale");
        let ignored = self.ignored(f.group, f.member);
        let b = &mut self.belief[f.group][f.member];
        *b = match f.op {
            Op::Probe | Op::Monitor if r.running() => Belief::Running,
            // on_fail = ignore: the engine carries on as if the monitor
            // had passed (Pacemaker's "pretend the resource did not
            // fail"), whatever the monitor said.
            Op::Monitor if ignored => *b,
            Op::Probe | Op::Monitor if r.not_running() => Belief::Stopped,
            // An agent that cannot run here runs nothing.
            Op::Probe if matches!(a, Answer::NotInstalled | Answer::Error) => Belief::Stopped,
            Op::Start if r.running() => Belief::Running,
            Op::Stop if r.ok() || r.not_running() => Belief::Stopped,
            _ => Belief::Unknown,
        };
        self.drain()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn engine_keeps_order_roles_blocks_and_expiry(
        cfgs in prop::collection::vec(group_cfg(), 2),
        start_active in prop::collection::vec(any::<bool>(), 2),
        steps in prop::collection::vec(step(), 1..80),
    ) {
        let t0 = Instant::now();
        let mut w = World {
            e: Engine::new(specs(&cfgs)),
            belief: cfgs.iter().map(|c| vec![Belief::Unknown; c.members.len()]).collect(),
            cfgs,
            now: t0,
            flying: Vec::new(),
            active: start_active.clone(),
            maint_group: vec![false; 2],
            maint_all: false,
        };
        for (g, a) in start_active.iter().enumerate() {
            w.e.handle_role(&format!("vi{g}"), *a, w.now);
        }
        w.e.handle_start(w.now);
        w.drain()?;
        let mut stale_sent = 0;
        for s in steps {
            match s {
                Step::Role(g, a) => {
                    w.active[g] = a;
                    w.e.handle_role(&format!("vi{g}"), a, w.now);
                }
                Step::Answer(i, a) => {
                    w.answer(i, a)?;
                    continue;
                }
                Step::Stale(n) => {
                    prop_assert!(!w.e.handle_result(OpId::from_raw(1_000_000 + n), AgentResult::code(0), w.now));
                    stale_sent += 1;
                }
                Step::Advance(ms) => {
                    w.now += Duration::from_millis(ms);
                    w.e.handle_timeout(w.now);
                }
                Step::ToDeadline => {
                    if let Some(t) = w.e.poll_timeout() {
                        w.now = w.now.max(t);
                        w.e.handle_timeout(w.now);
                    }
                }
                Step::Cleanup(g) => {
                    let group = g.map(|g| format!("g{g}"));
                    w.e.handle_command(Command::Cleanup { group, member: None }, w.now).unwrap();
                }
                Step::Maintenance(g, on) => {
                    match g {
                        Some(g) => w.maint_group[g] = on,
                        None => {
                            w.maint_all = on;
                            if !on {
                                w.maint_group = vec![false; 2];
                            }
                        }
                    }
                    let group = g.map(|g| format!("g{g}"));
                    w.e.handle_command(Command::Maintenance { group, on }, w.now).unwrap();
                }
                Step::Reload(g, member) => {
                    let c = &mut w.cfgs[g];
                    if member {
                        c.members[0].timeout_s = c.members[0].timeout_s % 19 + 1;
                    } else {
                        c.threshold = (c.threshold + 1) % 4;
                        c.managed = !c.managed;
                    }
                    w.e.handle_groups(specs(&w.cfgs), w.now);
                }
                Step::Restart(g, m) => {
                    let _ = w.e.handle_command(
                        Command::Restart { group: format!("g{g}"), member: format!("m{m}") },
                        w.now,
                    );
                }
            }
            w.drain()?;
        }
        prop_assert!(w.e.stale_results() >= stale_sent);
        // Idle with every call answered OK and the roles settled: a master
        // group that is not banned, blocked or unmanaged ends started.
        for _ in 0..200 {
            if w.flying.is_empty() {
                break;
            }
            w.answer(0, Answer::Ok)?;
        }
        for (gi, s) in w.e.status(w.now).iter().enumerate() {
            if w.flying.is_empty()
                && w.active[gi]
                && s.ban.is_none()
                && s.blocked.is_none()
                && s.held_from.is_none()
                && !w.unmanaged(gi)
                && !s.members.iter().any(|m| m.state == State::Failed)
                && s.state != State::Partial
            {
                prop_assert_eq!(s.state, State::Started, "{:?}", s);
            }
        }
    }
}
