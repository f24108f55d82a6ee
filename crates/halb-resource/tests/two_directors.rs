//! Two directors' engines over one simulated world, in virtual time: the
//! contract the integration keeps — the role moves to the peer only after
//! the old master's engine said [`Action::GroupReleased`] — is enough for
//! no member to ever run on both directors at once, whatever fails: starts
//! that fail half-way (the member left running), stops that fail or hang
//! (the member left running: the group blocks and is never released),
//! members that die, bans that move the group.
#![allow(clippy::unwrap_used)]

use halb_resource::{
    Action, Agent, AgentResult, Engine, Follows, GroupSpec, MemberSpec, Op, OpId, OP_GRACE,
};
use proptest::prelude::*;
use std::time::{Duration, Instant};

const MEMBERS: usize = 3;

#[derive(Debug, Clone, Copy)]
enum Answer {
    /// What the world says (start and stop succeed).
    Truth,
    /// The call fails; a start leaves the member running, a stop leaves
    /// it as it was.
    Fail,
    /// The call hangs: the engine gives up on it at its deadline.
    Hang,
}

#[derive(Debug, Clone)]
enum Step {
    /// VRRP wants the other director to be master.
    Move,
    Answer(usize, Answer),
    /// A member dies on a director.
    Crash(usize, usize),
    Advance(u64),
    Cleanup(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::Move),
        12 => (0usize..2, prop_oneof![8 => Just(Answer::Truth), 2 => Just(Answer::Fail), 1 => Just(Answer::Hang)])
            .prop_map(|(n, a)| Step::Answer(n, a)),
        2 => (0usize..2, 0..MEMBERS).prop_map(|(n, m)| Step::Crash(n, m)),
        3 => (0u64..40_000).prop_map(Step::Advance),
        1 => (0usize..2).prop_map(Step::Cleanup),
    ]
}

fn spec(threshold: u32, start_fatal: bool) -> GroupSpec {
    let members = (0..MEMBERS)
        .map(|i| {
            let mut m = MemberSpec::new(format!("m{i}"), Agent::Lsb(format!("m{i}")));
            m.monitor.interval = Duration::from_secs(5);
            m.monitor.timeout = Duration::from_secs(5);
            m.start_timeout = Duration::from_secs(5);
            m.stop_timeout = Duration::from_secs(5);
            m
        })
        .collect();
    let mut g = GroupSpec::new("g", Follows::Instance("vi".into()), members);
    g.migration_threshold = threshold;
    g.failure_timeout = Some(Duration::from_secs(30));
    g.start_failure_is_fatal = start_fatal;
    g
}

struct Node {
    e: Engine,
    /// The call in flight: id, member, op, deadline.
    flying: Option<(OpId, usize, Op, Instant)>,
}

struct Sim {
    nodes: [Node; 2],
    /// `runs[m][n]`: member m runs on director n.
    runs: [[bool; 2]; MEMBERS],
    now: Instant,
    /// Who holds the role (in the engines' view).
    master: Option<usize>,
    /// The role waits for this director until the master releases.
    handover_to: Option<usize>,
}

impl Sim {
    fn drain(&mut self) -> Result<(), TestCaseError> {
        loop {
            let mut any = false;
            for n in 0..2 {
                if let Some((id, _, op, deadline)) = self.nodes[n].flying {
                    if deadline <= self.now {
                        // The engine gave up on it (`id` is stale now): a
                        // hung start may have started the member, a hung
                        // stop left it as it was.
                        let (_, m, ..) = self.nodes[n].flying.take().unwrap();
                        assert!(!self.nodes[n]
                            .e
                            .handle_result(id, AgentResult::code(0), self.now));
                        if op == Op::Start {
                            self.runs[m][n] = true;
                        }
                    }
                }
                while let Some(a) = self.nodes[n].e.poll_action() {
                    any = true;
                    match a {
                        Action::Run {
                            id,
                            member,
                            op,
                            timeout,
                            ..
                        } => {
                            prop_assert!(self.nodes[n].flying.is_none(), "two calls in flight");
                            let m: usize = member[1..].parse().unwrap();
                            self.nodes[n].flying = Some((id, m, op, self.now + timeout + OP_GRACE));
                        }
                        Action::GroupReleased { .. } => {
                            if self.master == Some(n) {
                                self.master = None;
                            }
                            if let Some(t) = self.handover_to.take() {
                                self.give_role(t);
                            }
                        }
                        Action::GiveUp { .. } => {
                            // The director faults the instance: the peer
                            // takes the role, after the release.
                            if self.master == Some(n) && self.handover_to.is_none() {
                                self.move_role();
                            }
                        }
                        Action::Event(_) | Action::BanLifted { .. } => {}
                    }
                }
            }
            if !any {
                break;
            }
        }
        for (m, r) in self.runs.iter().enumerate() {
            prop_assert!(!(r[0] && r[1]), "m{m} runs on both directors");
        }
        Ok(())
    }

    fn give_role(&mut self, n: usize) {
        self.master = Some(n);
        self.nodes[n].e.handle_role("vi", true, self.now);
    }

    fn move_role(&mut self) {
        match self.master {
            Some(m) if self.handover_to.is_none() => {
                self.handover_to = Some(1 - m);
                self.nodes[m].e.handle_role("vi", false, self.now);
            }
            Some(_) => {}
            None => {
                if let Some(t) = self.handover_to.take() {
                    self.give_role(1 - t);
                }
            }
        }
    }

    fn answer(&mut self, n: usize, a: Answer) {
        let Some((id, m, op, _)) = self.nodes[n].flying else {
            return;
        };
        let runs = &mut self.runs[m][n];
        let r = match (op, a) {
            (_, Answer::Hang) => return,
            (Op::Probe | Op::Monitor, Answer::Truth) => {
                AgentResult::code(if *runs { 0 } else { 7 })
            }
            (Op::Probe | Op::Monitor, Answer::Fail) => AgentResult::code(1),
            (Op::Start, Answer::Truth) => {
                *runs = true;
                AgentResult::code(0)
            }
            (Op::Start, Answer::Fail) => {
                *runs = true;
                AgentResult::code(1)
            }
            (Op::Stop, Answer::Truth) => {
                *runs = false;
                AgentResult::code(0)
            }
            (Op::Stop, Answer::Fail) => AgentResult::code(1),
        };
        self.nodes[n].flying = None;
        self.nodes[n].e.handle_result(id, r, self.now);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn no_member_ever_runs_on_both_directors(
        threshold in 0u32..3,
        start_fatal in any::<bool>(),
        steps in prop::collection::vec(step(), 1..120),
    ) {
        let now = Instant::now();
        let node = || Node { e: Engine::new(vec![spec(threshold, start_fatal)]), flying: None };
        let mut s = Sim {
            nodes: [node(), node()],
            runs: [[false; 2]; MEMBERS],
            now,
            master: None,
            handover_to: None,
        };
        s.give_role(0);
        for n in 0..2 {
            s.nodes[n].e.handle_start(now);
        }
        s.drain()?;
        for st in steps {
            match st {
                Step::Move => s.move_role(),
                Step::Answer(n, a) => s.answer(n, a),
                Step::Crash(n, m) => s.runs[m][n] = false,
                Step::Advance(ms) => {
                    s.now += Duration::from_millis(ms);
                    for n in 0..2 {
                        s.nodes[n].e.handle_timeout(s.now);
                    }
                }
                Step::Cleanup(n) => {
                    s.nodes[n]
                        .e
                        .handle_command(halb_resource::Command::Cleanup { group: None, member: None }, s.now)
                        .unwrap();
                }
            }
            s.drain()?;
        }
    }
}
