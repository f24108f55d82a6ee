//! The resource engine, sans-IO: which agent call to make when, for every
//! resource group of this director, and what the answers mean.
//!
//! Like every sans-IO core of the workspace:
//!
//! ```text
//! engine.handle_*(…, now)              // start-up, a role change, an agent's result,
//!                                      // a timer, an operator command
//! while let Some(a) = engine.poll_action() { /* run agents, log, tell VRRP */ }
//! sleep until engine.poll_timeout(), then engine.handle_timeout(now)
//! ```
//!
//! Time comes in as `now` and never goes back (an earlier `now` is taken
//! as the latest one seen). In debug builds every input ends with
//! [`Engine::check_invariants`].
//!
//! # What the engine does
//!
//! A group *should run* here while its followed instance (or sync group)
//! is master ([`Engine::handle_role`]) and it is not banned. Per group
//! there is at most one agent call in flight; groups are independent, so
//! different groups' calls run in parallel. Whenever a group has nothing
//! in flight, it takes the first of these steps that applies:
//!
//! 1. **Probe** every member whose state is unknown (a monitor with
//!    interval 0), first to last: at [`Engine::handle_start`] all of them,
//!    on becoming master those known stopped (someone may have started
//!    them by hand), after `cleanup` or leaving maintenance all of them.
//! 2. **Stop**, last to first, every member that is not known stopped and
//!    may not keep running: all of them when the group should not run
//!    here; those from a failed member on (restart, `on_fail = stop`);
//!    and any that runs after one that does not (the running members are
//!    always a prefix of the group: a member only runs once the one
//!    before it runs).
//! 3. **Start** the first member that does not run, when the group
//!    should run here.
//! 4. **Monitor** a running member whose interval has come.
//!
//! A probe that finds a member running where the group should run
//! *adopts* it (never starts it twice); where it should not, it is
//! reported and stopped. When the role is lost and the last member is
//! stopped, [`Action::GroupReleased`] lets VRRP drop the addresses.
//!
//! **Failures** (a start or monitor that fails or times out, a probe that
//! errs) add one to the member's fail count, which expires
//! `failure_timeout` after its last failure. The group is **banned**
//! here ([`Action::GiveUp`], until the same expiry, or until cleanup)
//! when the fail count reaches `migration_threshold`, when a start fails
//! and `start_failure_is_fatal`, on a hard or fatal OCF error (2–6: it
//! cannot run here), or on `on_fail = standby`. Otherwise a failed
//! monitor applies the member's `on_fail`; a failed start (not fatal)
//! restarts.
//!
//! A **stop** that fails or times out **blocks** the group: nothing more
//! is started, stopped or monitored for it here, it is never reported
//! stopped (no [`Action::GroupReleased`]) since a member may still run,
//! until an operator's `cleanup`.
//!
//! **Maintenance** (`managed = false`, or [`Command::Maintenance`]): no
//! agent is called for the group (a call already in flight finishes and
//! its result is recorded, without recovery); losing the role releases
//! at once, since halb does not own the group then. Leaving maintenance
//! re-probes every member.
//!
//! **Stale results.** Every call has an [`OpId`], never reused. A role
//! change does not cancel a call in flight (an agent half-way through a
//! start cannot be undone safely): its result is applied when it comes,
//! then the next step follows the new role. The engine gives up on a call
//! itself [`OP_GRACE`] after its timeout (the shell's process runner kills
//! it at the timeout) and treats it as timed out; a result that comes
//! later, or for an id it never issued, is ignored and counted
//! ([`Engine::stale_results`]): [`Engine::handle_result`] returns false.

use crate::result::{AgentResult, AgentStatus, Severity};
use crate::spec::{GroupSpec, MemberSpec, OnFail};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long after an operation's timeout the engine stops waiting for its
/// result (the shell kills the agent at the timeout itself).
pub const OP_GRACE: Duration = Duration::from_secs(2);

/// One agent call. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(u64);

impl OpId {
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op#{}", self.0)
    }
}

/// An agent operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// A one-off monitor (interval 0): is it running?
    Probe,
    Start,
    Stop,
    /// A recurring monitor.
    Monitor,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Probe => "probe",
            Op::Start => "start",
            Op::Stop => "stop",
            Op::Monitor => "monitor",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a group was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GiveUpReason {
    /// A member's fail count reached `migration_threshold`.
    MigrationThreshold,
    /// A start failed and `start_failure_is_fatal`.
    StartFailed,
    /// A hard or fatal OCF error: the member cannot run here.
    HardError,
    /// `on_fail = standby`: the director should give up all it holds.
    Standby,
}

/// What the engine asks of its shell, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Run this agent operation; report with [`Engine::handle_result`].
    Run {
        id: OpId,
        group: String,
        member: String,
        op: Op,
        /// The call's deadline (the agent is killed at it).
        timeout: Duration,
        /// The monitor interval (OCF `CRM_meta_interval`); zero for a
        /// probe, a start and a stop.
        interval: Duration,
        /// The member, for the agents shell.
        spec: Arc<MemberSpec>,
    },
    /// For the log, the alerts and the status.
    Event(ResourceEvent),
    /// The group is fully stopped after losing the role (or unmanaged):
    /// VRRP may release its addresses now.
    GroupReleased { group: String },
    /// The group may not run here: the director must let the peer take
    /// it (fault the followed instance or drop its priority) until
    /// `until` (`None`: until cleanup). The engine stops the group
    /// itself.
    GiveUp {
        group: String,
        until: Option<Instant>,
        reason: GiveUpReason,
    },
    /// The ban ended (expiry or cleanup): the director may take the group
    /// again (undo what it did for [`Action::GiveUp`]).
    BanLifted { group: String },
}

/// Something that happened to a group or one of its members.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceEvent {
    pub group: String,
    /// `None`: the group as a whole.
    pub member: Option<String>,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Started {
        elapsed: Duration,
    },
    /// Started again after a failure or a restart command.
    Restarted {
        elapsed: Duration,
    },
    Stopped {
        elapsed: Duration,
    },
    /// A probe found it running where it should run: kept, not started.
    Adopted,
    /// A probe found it running where it should not (or out of order):
    /// it is stopped next.
    RunningWhereItShouldNot,
    /// An operation failed.
    Failed {
        op: Op,
        exit_code: Option<i32>,
        exit_code_name: &'static str,
        exit_reason: Option<String>,
        elapsed: Duration,
        fail_count: u32,
        migration_threshold: u32,
    },
    /// `on_fail` applied after a failure.
    Recovery {
        on_fail: OnFail,
    },
    Banned {
        until: Option<Instant>,
        reason: String,
    },
    BanLifted,
    /// Nothing more is started or stopped here until cleanup.
    Blocked {
        reason: String,
    },
    /// Maintenance on (or `managed = false`).
    Unmanaged,
    /// Maintenance off.
    Managed,
    CleanedUp,
}

impl fmt::Display for ResourceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "resource group {}", self.group)?;
        if let Some(m) = &self.member {
            write!(f, " member {m}")?;
        }
        match &self.kind {
            EventKind::Started { elapsed } => write!(f, ": started ({elapsed:?})"),
            EventKind::Restarted { elapsed } => write!(f, ": restarted ({elapsed:?})"),
            EventKind::Stopped { elapsed } => write!(f, ": stopped ({elapsed:?})"),
            EventKind::Adopted => write!(f, ": already running, adopted"),
            EventKind::RunningWhereItShouldNot => {
                write!(f, ": running where it should not, stopping it")
            }
            EventKind::Failed {
                op,
                exit_code,
                exit_code_name,
                exit_reason,
                elapsed,
                fail_count,
                migration_threshold,
            } => {
                write!(f, ": {op} failed: ")?;
                match exit_code {
                    Some(c) => write!(f, "exit {c} ({exit_code_name})")?,
                    None => write!(f, "{exit_code_name}")?,
                }
                if let Some(r) = exit_reason {
                    write!(f, ": {r}")?;
                }
                write!(f, " after {elapsed:?}; fail count {fail_count}")?;
                if *migration_threshold > 0 {
                    write!(f, "/{migration_threshold}")?;
                }
                Ok(())
            }
            EventKind::Recovery { on_fail } => write!(f, ": on_fail = {on_fail}"),
            EventKind::Banned { reason, until } => {
                write!(f, ": banned from this director: {reason}")?;
                if until.is_none() {
                    write!(f, " (until cleanup)")?;
                }
                Ok(())
            }
            EventKind::BanLifted => write!(f, ": ban lifted"),
            EventKind::Blocked { reason } => write!(f, ": BLOCKED: {reason}"),
            EventKind::Unmanaged => write!(f, ": unmanaged (maintenance)"),
            EventKind::Managed => write!(f, ": managed again"),
            EventKind::CleanedUp => write!(f, ": cleaned up"),
        }
    }
}

/// An operator's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Clear fail counts, last failures, bans, blocks and `on_fail =
    /// stop` holds, and re-probe (a healthy member is adopted again,
    /// never restarted). `group: None`: every group; `member`: only that
    /// member's counts (the group's ban or block goes too).
    Cleanup {
        group: Option<String>,
        member: Option<String>,
    },
    /// Stop this member and every later one (in reverse), start them again.
    Restart { group: String, member: String },
    /// Maintenance for one group or (`None`) all of them.
    Maintenance { group: Option<String>, on: bool },
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    NoGroup(String),
    NoMember {
        group: String,
        member: String,
    },
    /// Restart of a member that does not run here (or is unmanaged,
    /// blocked, or its group is not active here).
    NotRunning {
        group: String,
        member: String,
    },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::NoGroup(g) => write!(f, "no resource group {g:?}"),
            CommandError::NoMember { group, member } => {
                write!(f, "resource group {group:?} has no member {member:?}")
            }
            CommandError::NotRunning { group, member } => write!(
                f,
                "{group}/{member} does not run here (or is unmanaged or blocked): nothing to restart"
            ),
        }
    }
}

impl std::error::Error for CommandError {}

/// A member's (or a group's) state, for `halb list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Started,
    Stopped,
    Starting,
    Stopping,
    Failed,
    Blocked,
    Unmanaged,
    Probing,
    /// Before halb's start-up probes.
    Unknown,
    /// A group only: some members run, others do not (between steps, or
    /// held stopped by `on_fail = stop`).
    Partial,
}

/// A group's status.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupStatus {
    pub name: String,
    /// The followed instance or sync group.
    pub follows: String,
    /// The followed instance is master here.
    pub active: bool,
    pub state: State,
    pub managed: bool,
    /// Why it is blocked (a stop failed: a member may still run).
    pub blocked: Option<String>,
    pub ban: Option<BanStatus>,
    pub members: Vec<MemberStatus>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BanStatus {
    pub reason: String,
    /// `None`: until cleanup.
    pub expires_in_ms: Option<u64>,
    #[serde(skip)]
    pub until: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MemberStatus {
    pub name: String,
    /// `ocf:heartbeat:Filesystem`.
    pub agent: String,
    pub state: State,
    pub fail_count: u32,
    /// 0: never.
    pub migration_threshold: u32,
    pub last_failure: Option<FailureStatus>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FailureStatus {
    pub op: Op,
    pub exit_code: Option<i32>,
    pub exit_code_name: String,
    pub exit_reason: Option<String>,
    pub ago_ms: u64,
    /// How long the failed operation took.
    pub duration_ms: u64,
    #[serde(skip)]
    pub at: Instant,
}

/// What the engine knows of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// To be probed.
    Unknown,
    Running,
    Stopped,
    /// May run, may not: it must be stopped before it is started.
    Failed,
}

#[derive(Debug, Clone)]
struct Failure {
    op: Op,
    exit_code: Option<i32>,
    exit_code_name: &'static str,
    exit_reason: Option<String>,
    at: Instant,
    elapsed: Duration,
}

#[derive(Debug)]
struct Member {
    spec: Arc<MemberSpec>,
    known: Known,
    fail_count: u32,
    last_failure: Option<Failure>,
    next_monitor: Option<Instant>,
    /// Being restarted: its next successful start says so.
    restarting: bool,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    id: OpId,
    member: usize,
    op: Op,
    deadline: Instant,
    timeout: Duration,
}

#[derive(Debug, Clone)]
struct Ban {
    until: Option<Instant>,
    reason: String,
}

#[derive(Debug)]
struct Group {
    spec: GroupSpec,
    members: Vec<Member>,
    active: bool,
    in_flight: Option<InFlight>,
    blocked: Option<(usize, String)>,
    ban: Option<Ban>,
    maintenance: bool,
    /// Restarting: members from this one on are stopped first.
    stop_from: Option<usize>,
    /// `on_fail = stop`: members from this one on stay stopped.
    hold_from: Option<usize>,
    /// The role was lost and VRRP waits for the group to be down.
    release_owed: bool,
}

impl Group {
    fn should_run(&self) -> bool {
        self.active && self.ban.is_none()
    }

    /// Members below this index may run; the rest are stopped.
    fn keep(&self) -> usize {
        let n = self.members.len();
        let mut keep = if self.should_run() { n } else { 0 };
        for cap in [self.stop_from, self.hold_from].into_iter().flatten() {
            keep = keep.min(cap);
        }
        keep.min(self.first_not_running())
    }

    fn first_not_running(&self) -> usize {
        self.members
            .iter()
            .position(|m| m.known != Known::Running)
            .unwrap_or(self.members.len())
    }

    fn all_stopped(&self) -> bool {
        self.members.iter().all(|m| m.known == Known::Stopped)
    }

    /// Every member not in flight is probed again.
    fn reprobe(&mut self, which: impl Fn(Known) -> bool) {
        let busy = self.in_flight.map(|f| f.member);
        for (i, m) in self.members.iter_mut().enumerate() {
            if Some(i) != busy && which(m.known) {
                m.known = Known::Unknown;
                m.next_monitor = None;
            }
        }
    }
}

/// The resource engine. See the module documentation.
#[derive(Debug)]
pub struct Engine {
    groups: Vec<Group>,
    by_op: HashMap<OpId, usize>,
    started: bool,
    /// Maintenance for every group.
    maintenance: bool,
    next_id: u64,
    actions: VecDeque<Action>,
    now: Option<Instant>,
    stale: u64,
}

impl Engine {
    /// An engine for these groups. Nothing happens until
    /// [`Engine::handle_start`].
    pub fn new(groups: Vec<GroupSpec>) -> Engine {
        let groups = groups
            .into_iter()
            .map(|spec| Group {
                members: spec
                    .members
                    .iter()
                    .map(|m| Member {
                        spec: Arc::new(m.clone()),
                        known: Known::Unknown,
                        fail_count: 0,
                        last_failure: None,
                        next_monitor: None,
                        restarting: false,
                    })
                    .collect(),
                spec,
                active: false,
                in_flight: None,
                blocked: None,
                ban: None,
                maintenance: false,
                stop_from: None,
                hold_from: None,
                release_owed: false,
            })
            .collect();
        let e = Engine {
            groups,
            by_op: HashMap::new(),
            started: false,
            maintenance: false,
            next_id: 0,
            actions: VecDeque::new(),
            now: None,
            stale: 0,
        };
        e.debug_check();
        e
    }

    /// halb started: probe every member of every group (what runs where
    /// it should is adopted, what runs where it should not is stopped).
    /// Roles given before this are kept.
    pub fn handle_start(&mut self, now: Instant) {
        self.advance(now);
        self.started = true;
        for gi in 0..self.groups.len() {
            self.groups[gi].reprobe(|_| true);
            self.unmanaged_event(gi, true);
        }
        self.drive_all();
        self.debug_check();
    }

    /// The followed instance or sync group `name` (or the group of that
    /// name) became master (`active`) or left master. Returns how many
    /// groups it concerns.
    pub fn handle_role(&mut self, name: &str, active: bool, now: Instant) -> usize {
        self.advance(now);
        let mut n = 0;
        for gi in 0..self.groups.len() {
            let g = &mut self.groups[gi];
            if g.spec.name != name && g.spec.follows.name() != name {
                continue;
            }
            n += 1;
            if g.active == active {
                continue;
            }
            g.active = active;
            if active {
                g.release_owed = false;
                g.reprobe(|k| k == Known::Stopped);
            } else {
                g.release_owed = true;
                for m in &mut g.members {
                    m.restarting = false;
                }
            }
        }
        self.drive_all();
        self.debug_check();
        n
    }

    /// The shell ran `id`. Returns false (and changes nothing) for a stale
    /// id: one the engine gave up on, or never issued.
    pub fn handle_result(&mut self, id: OpId, result: AgentResult, now: Instant) -> bool {
        self.advance(now);
        let fresh = match self.by_op.remove(&id) {
            Some(gi) => {
                if let Some(f) = self.groups[gi].in_flight.take() {
                    self.apply(gi, f, result);
                }
                true
            }
            None => {
                self.stale += 1;
                false
            }
        };
        self.drive_all();
        self.debug_check();
        fresh
    }

    /// Time passed: operation deadlines, fail count and ban expiry, the
    /// monitors that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        self.drive_all();
        self.debug_check();
    }

    /// An operator's command.
    pub fn handle_command(&mut self, command: Command, now: Instant) -> Result<(), CommandError> {
        self.advance(now);
        let r = self.command(command);
        self.drive_all();
        self.debug_check();
        r
    }

    /// The next thing for the shell to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Engine::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |i: Instant| t = Some(t.map_or(i, |t| t.min(i)));
        for g in &self.groups {
            if let Some(f) = g.in_flight {
                at(f.deadline);
            } else if self.started && !self.unmanaged(g) && g.blocked.is_none() {
                for m in &g.members {
                    if m.known == Known::Running {
                        if let Some(n) = m.next_monitor {
                            at(n);
                        }
                    }
                }
            }
            if let Some(u) = g.ban.as_ref().and_then(|b| b.until) {
                at(u);
            }
            for m in &g.members {
                if let Some(e) = Self::count_expiry(&g.spec, m) {
                    at(e);
                }
            }
        }
        t
    }

    /// Every group's status, as of `now`.
    pub fn status(&self, now: Instant) -> Vec<GroupStatus> {
        self.groups
            .iter()
            .map(|g| self.group_status(g, now))
            .collect()
    }

    /// The group names, in configuration order.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(|g| g.spec.name.as_str())
    }

    /// A member's spec (for the agents shell, or `halb resource show`).
    pub fn member_spec(&self, group: &str, member: &str) -> Option<&Arc<MemberSpec>> {
        self.group(group)
            .and_then(|g| g.members.iter().find(|m| m.spec.name == member))
            .map(|m| &m.spec)
    }

    /// Results ignored because their id was stale.
    pub fn stale_results(&self) -> u64 {
        self.stale
    }

    /// Operations in flight (at most one per group).
    pub fn in_flight(&self) -> usize {
        self.by_op.len()
    }

    fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.spec.name == name)
    }

    fn group_index(&self, name: &str) -> Result<usize, CommandError> {
        self.groups
            .iter()
            .position(|g| g.spec.name == name)
            .ok_or_else(|| CommandError::NoGroup(name.to_owned()))
    }

    fn unmanaged(&self, g: &Group) -> bool {
        !g.spec.managed || g.maintenance || self.maintenance
    }

    fn count_expiry(spec: &GroupSpec, m: &Member) -> Option<Instant> {
        match (spec.failure_timeout, &m.last_failure) {
            (Some(t), Some(f)) if m.fail_count > 0 => Some(f.at + t),
            _ => None,
        }
    }

    fn event(&mut self, gi: usize, member: Option<usize>, kind: EventKind) {
        let g = &self.groups[gi];
        self.actions.push_back(Action::Event(ResourceEvent {
            group: g.spec.name.clone(),
            member: member.map(|i| g.members[i].spec.name.clone()),
            kind,
        }));
    }

    fn unmanaged_event(&mut self, gi: usize, only_spec: bool) {
        let g = &self.groups[gi];
        let unmanaged = if only_spec {
            !g.spec.managed
        } else {
            self.unmanaged(g)
        };
        if unmanaged {
            self.event(gi, None, EventKind::Unmanaged);
        }
    }

    /// Takes `now` (never backwards) and fires what is due by it:
    /// operations past their deadline time out, fail counts and bans
    /// expire.
    fn advance(&mut self, now: Instant) {
        let now = self.now.map_or(now, |n| n.max(now));
        self.now = Some(now);
        for gi in 0..self.groups.len() {
            if let Some(f) = self.groups[gi].in_flight {
                if f.deadline <= now {
                    self.by_op.remove(&f.id);
                    self.groups[gi].in_flight = None;
                    self.apply(gi, f, AgentResult::timed_out(f.timeout));
                }
            }
            let g = &mut self.groups[gi];
            for m in &mut g.members {
                if Self::count_expiry(&g.spec, m).is_some_and(|e| e <= now) {
                    m.fail_count = 0;
                }
            }
            if g.ban
                .as_ref()
                .and_then(|b| b.until)
                .is_some_and(|u| u <= now)
            {
                self.lift_ban(gi);
            }
        }
    }

    fn now(&self) -> Instant {
        // Every input calls `advance` first.
        self.now.unwrap_or_else(Instant::now)
    }

    fn lift_ban(&mut self, gi: usize) {
        if self.groups[gi].ban.take().is_none() {
            return;
        }
        self.event(gi, None, EventKind::BanLifted);
        let group = self.groups[gi].spec.name.clone();
        self.actions.push_back(Action::BanLifted { group });
        let g = &mut self.groups[gi];
        if g.active {
            g.reprobe(|k| k == Known::Stopped);
        }
    }

    /// What an agent's answer means.
    fn apply(&mut self, gi: usize, f: InFlight, r: AgentResult) {
        let now = self.now();
        let i = f.member;
        let interval = self.groups[gi].members[i].spec.monitor.interval;
        let next_monitor = (!interval.is_zero()).then(|| now + interval);
        match f.op {
            Op::Probe => {
                let should = self.groups[gi].should_run();
                let m = &mut self.groups[gi].members[i];
                if r.running() {
                    m.known = Known::Running;
                    m.next_monitor = next_monitor;
                    let kind = if should {
                        EventKind::Adopted
                    } else {
                        EventKind::RunningWhereItShouldNot
                    };
                    self.event(gi, Some(i), kind);
                } else if r.not_running() {
                    m.known = Known::Stopped;
                } else if matches!(r.status, AgentStatus::Error(_))
                    || r.exit_code() == Some(crate::result::code::ERR_INSTALLED)
                {
                    // The agent cannot run here: nothing of it runs.
                    m.known = Known::Stopped;
                    self.fail(gi, i, Op::Probe, &r);
                } else {
                    m.known = Known::Failed;
                    self.fail(gi, i, Op::Probe, &r);
                }
            }
            Op::Start => {
                let m = &mut self.groups[gi].members[i];
                if r.running() {
                    m.known = Known::Running;
                    m.next_monitor = next_monitor;
                    let kind = if std::mem::take(&mut m.restarting) {
                        EventKind::Restarted { elapsed: r.elapsed }
                    } else {
                        EventKind::Started { elapsed: r.elapsed }
                    };
                    self.event(gi, Some(i), kind);
                } else {
                    m.known = Known::Failed;
                    self.fail(gi, i, Op::Start, &r);
                }
            }
            Op::Stop => {
                let m = &mut self.groups[gi].members[i];
                m.next_monitor = None;
                if r.ok() || r.not_running() {
                    m.known = Known::Stopped;
                    self.event(gi, Some(i), EventKind::Stopped { elapsed: r.elapsed });
                } else {
                    m.known = Known::Failed;
                    self.record(gi, i, Op::Stop, &r);
                    let reason = format!(
                        "stop of {} {}: it may still run here",
                        self.groups[gi].members[i].spec.name,
                        r.describe()
                    );
                    self.block(gi, i, reason);
                }
            }
            Op::Monitor => {
                let on_fail = self.groups[gi].members[i].spec.on_fail;
                let m = &mut self.groups[gi].members[i];
                if r.running() {
                    m.next_monitor = next_monitor;
                } else if on_fail == OnFail::Ignore {
                    m.next_monitor = next_monitor;
                    self.record(gi, i, Op::Monitor, &r);
                    self.event(gi, Some(i), EventKind::Recovery { on_fail });
                } else {
                    m.known = Known::Failed;
                    m.next_monitor = None;
                    self.fail(gi, i, Op::Monitor, &r);
                }
            }
        }
    }

    /// Records a failure (last failure, an event) without counting it.
    fn record(&mut self, gi: usize, i: usize, op: Op, r: &AgentResult) {
        let now = self.now();
        let threshold = self.groups[gi].spec.migration_threshold;
        let m = &mut self.groups[gi].members[i];
        m.last_failure = Some(Failure {
            op,
            exit_code: r.exit_code(),
            exit_code_name: r.code_name(),
            exit_reason: r.exit_reason.clone(),
            at: now,
            elapsed: r.elapsed,
        });
        let fail_count = m.fail_count;
        self.event(
            gi,
            Some(i),
            EventKind::Failed {
                op,
                exit_code: r.exit_code(),
                exit_code_name: r.code_name(),
                exit_reason: r.exit_reason.clone(),
                elapsed: r.elapsed,
                fail_count,
                migration_threshold: threshold,
            },
        );
    }

    /// A probe, start or monitor failed: count it, then ban or recover.
    fn fail(&mut self, gi: usize, i: usize, op: Op, r: &AgentResult) {
        {
            let m = &mut self.groups[gi].members[i];
            m.fail_count = m.fail_count.saturating_add(1);
        }
        self.record(gi, i, op, r);
        if self.unmanaged(&self.groups[gi]) {
            return;
        }
        let g = &self.groups[gi];
        let m = &g.members[i];
        let threshold = g.spec.migration_threshold;
        let ban = match r.severity() {
            Severity::Hard | Severity::Fatal => Some((
                GiveUpReason::HardError,
                format!(
                    "{op} of {} {} ({:?} error: it cannot run on this director)",
                    m.spec.name,
                    r.describe(),
                    r.severity()
                ),
            )),
            Severity::Soft if op == Op::Start && g.spec.start_failure_is_fatal => Some((
                GiveUpReason::StartFailed,
                format!(
                    "start of {} {} (start_failure_is_fatal)",
                    m.spec.name,
                    r.describe()
                ),
            )),
            Severity::Soft if threshold > 0 && m.fail_count >= threshold => Some((
                GiveUpReason::MigrationThreshold,
                format!(
                    "{} failed {} times (migration_threshold = {threshold})",
                    m.spec.name, m.fail_count
                ),
            )),
            Severity::Soft => None,
        };
        if let Some((why, reason)) = ban {
            self.ban(gi, why, reason);
            return;
        }
        // A failed start (not fatal) or probe is restarted; a monitor
        // follows its on_fail.
        let on_fail = match op {
            Op::Monitor => m.spec.on_fail,
            _ => OnFail::Restart,
        };
        if op == Op::Monitor {
            self.event(gi, Some(i), EventKind::Recovery { on_fail });
        }
        let name = self.groups[gi].members[i].spec.name.clone();
        let g = &mut self.groups[gi];
        match on_fail {
            OnFail::Restart => {
                g.stop_from = Some(g.stop_from.map_or(i, |s| s.min(i)));
                if g.should_run() {
                    for m in &mut g.members[i..] {
                        if m.known != Known::Stopped {
                            m.restarting = true;
                        }
                    }
                }
            }
            OnFail::Stop => g.hold_from = Some(g.hold_from.map_or(i, |h| h.min(i))),
            OnFail::Block => {
                let reason = format!("monitor of {name} {} (on_fail = block)", r.describe());
                self.block(gi, i, reason);
            }
            // Handled before (a failed monitor is not counted then).
            OnFail::Ignore => {}
            OnFail::Standby => {
                let reason = format!("monitor of {name} {} (on_fail = standby)", r.describe());
                self.ban_until(gi, GiveUpReason::Standby, reason, None);
            }
        }
    }

    fn ban(&mut self, gi: usize, why: GiveUpReason, reason: String) {
        let until = self.groups[gi].spec.failure_timeout.map(|t| self.now() + t);
        self.ban_until(gi, why, reason, until);
    }

    fn ban_until(&mut self, gi: usize, why: GiveUpReason, reason: String, until: Option<Instant>) {
        let g = &mut self.groups[gi];
        for m in &mut g.members {
            m.restarting = false;
        }
        if let Some(b) = &mut g.ban {
            // Already banned: the later expiry wins, said once.
            b.until = match (b.until, until) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
            return;
        }
        g.ban = Some(Ban {
            until,
            reason: reason.clone(),
        });
        let group = g.spec.name.clone();
        self.event(gi, None, EventKind::Banned { until, reason });
        self.actions.push_back(Action::GiveUp {
            group,
            until,
            reason: why,
        });
    }

    fn block(&mut self, gi: usize, i: usize, reason: String) {
        self.groups[gi].blocked = Some((i, reason.clone()));
        self.event(gi, Some(i), EventKind::Blocked { reason });
    }

    fn command(&mut self, command: Command) -> Result<(), CommandError> {
        match command {
            Command::Cleanup { group, member } => {
                let targets: Vec<usize> = match &group {
                    Some(name) => vec![self.group_index(name)?],
                    None => (0..self.groups.len()).collect(),
                };
                let member = match (&group, &member) {
                    (Some(gname), Some(mname)) => {
                        let gi = targets[0];
                        let i = self.groups[gi]
                            .members
                            .iter()
                            .position(|m| &m.spec.name == mname)
                            .ok_or_else(|| CommandError::NoMember {
                                group: gname.clone(),
                                member: mname.clone(),
                            })?;
                        Some(i)
                    }
                    _ => None,
                };
                for gi in targets {
                    self.lift_ban(gi);
                    let g = &mut self.groups[gi];
                    g.blocked = None;
                    g.stop_from = None;
                    g.hold_from = None;
                    for (i, m) in g.members.iter_mut().enumerate() {
                        if member.is_none_or(|only| only == i) {
                            m.fail_count = 0;
                            m.last_failure = None;
                        }
                        m.restarting = false;
                    }
                    g.reprobe(|_| true);
                    self.event(gi, None, EventKind::CleanedUp);
                }
                Ok(())
            }
            Command::Restart { group, member } => {
                let gi = self.group_index(&group)?;
                let g = &self.groups[gi];
                let i = g
                    .members
                    .iter()
                    .position(|m| m.spec.name == member)
                    .ok_or_else(|| CommandError::NoMember {
                        group: group.clone(),
                        member: member.clone(),
                    })?;
                if g.members[i].known != Known::Running
                    || !g.should_run()
                    || g.blocked.is_some()
                    || self.unmanaged(g)
                {
                    return Err(CommandError::NotRunning { group, member });
                }
                let g = &mut self.groups[gi];
                g.stop_from = Some(g.stop_from.map_or(i, |s| s.min(i)));
                for m in &mut g.members[i..] {
                    if m.known != Known::Stopped {
                        m.restarting = true;
                    }
                }
                Ok(())
            }
            Command::Maintenance { group, on } => {
                let targets: Vec<usize> = match &group {
                    Some(name) => vec![self.group_index(name)?],
                    None => (0..self.groups.len()).collect(),
                };
                let before: Vec<bool> = targets
                    .iter()
                    .map(|&gi| self.unmanaged(&self.groups[gi]))
                    .collect();
                match group {
                    Some(_) => self.groups[targets[0]].maintenance = on,
                    None => {
                        self.maintenance = on;
                        if !on {
                            for g in &mut self.groups {
                                g.maintenance = false;
                            }
                        }
                    }
                }
                for (gi, was) in targets.into_iter().zip(before) {
                    let now = self.unmanaged(&self.groups[gi]);
                    if now == was {
                        continue;
                    }
                    if now {
                        self.event(gi, None, EventKind::Unmanaged);
                    } else {
                        self.groups[gi].reprobe(|_| true);
                        self.event(gi, None, EventKind::Managed);
                    }
                }
                Ok(())
            }
        }
    }

    fn drive_all(&mut self) {
        for gi in 0..self.groups.len() {
            self.drive(gi);
        }
    }

    /// The next step of one group (see the module documentation).
    fn next_op(&self, g: &Group) -> Option<(usize, Op)> {
        if !self.started || self.unmanaged(g) || g.blocked.is_some() || g.in_flight.is_some() {
            return None;
        }
        if let Some(i) = g.members.iter().position(|m| m.known == Known::Unknown) {
            return Some((i, Op::Probe));
        }
        let keep = g.keep();
        if let Some(i) = (keep..g.members.len())
            .rev()
            .find(|&i| g.members[i].known != Known::Stopped)
        {
            return Some((i, Op::Stop));
        }
        let first = g.first_not_running();
        let mut limit = if g.should_run() { g.members.len() } else { 0 };
        if let Some(h) = g.hold_from {
            limit = limit.min(h);
        }
        if first < limit {
            return Some((first, Op::Start));
        }
        None
    }

    fn drive(&mut self, gi: usize) {
        let now = self.now();
        {
            let g = &mut self.groups[gi];
            if let Some(s) = g.stop_from {
                if g.members[s..].iter().all(|m| m.known == Known::Stopped) {
                    g.stop_from = None;
                }
            }
        }
        let g = &self.groups[gi];
        let mut next = self.next_op(g);
        if next.is_none()
            && self.started
            && !self.unmanaged(g)
            && g.blocked.is_none()
            && g.in_flight.is_none()
        {
            next = g
                .members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.known == Known::Running)
                .filter_map(|(i, m)| m.next_monitor.filter(|&t| t <= now).map(|t| (t, i)))
                .min()
                .map(|(_, i)| (i, Op::Monitor));
        }
        if let Some((i, op)) = next {
            self.issue(gi, i, op);
        }
        let g = &self.groups[gi];
        if g.release_owed
            && !g.active
            && g.blocked.is_none()
            && (self.unmanaged(g) || (g.in_flight.is_none() && g.all_stopped()))
        {
            let group = g.spec.name.clone();
            self.groups[gi].release_owed = false;
            self.actions.push_back(Action::GroupReleased { group });
        }
    }

    fn issue(&mut self, gi: usize, i: usize, op: Op) {
        let now = self.now();
        let id = OpId(self.next_id);
        self.next_id += 1;
        let g = &mut self.groups[gi];
        let spec = g.members[i].spec.clone();
        let (timeout, interval) = match op {
            Op::Probe => (spec.monitor.timeout, Duration::ZERO),
            Op::Start => (spec.start_timeout, Duration::ZERO),
            Op::Stop => (spec.stop_timeout, Duration::ZERO),
            Op::Monitor => (spec.monitor.timeout, spec.monitor.interval),
        };
        g.in_flight = Some(InFlight {
            id,
            member: i,
            op,
            deadline: now + timeout + OP_GRACE,
            timeout,
        });
        self.by_op.insert(id, gi);
        self.actions.push_back(Action::Run {
            id,
            group: g.spec.name.clone(),
            member: spec.name.clone(),
            op,
            timeout,
            interval,
            spec,
        });
    }

    fn group_status(&self, g: &Group, now: Instant) -> GroupStatus {
        let unmanaged = self.unmanaged(g);
        let members: Vec<MemberStatus> = g
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let state = match (g.in_flight.filter(|f| f.member == i), &g.blocked) {
                    (_, Some((b, _))) if *b == i => State::Blocked,
                    (Some(f), _) => match f.op {
                        Op::Probe => State::Probing,
                        Op::Start => State::Starting,
                        Op::Stop => State::Stopping,
                        Op::Monitor => State::Started,
                    },
                    _ if unmanaged => State::Unmanaged,
                    _ => match m.known {
                        Known::Unknown if self.started => State::Probing,
                        Known::Unknown => State::Unknown,
                        Known::Running => State::Started,
                        Known::Stopped => State::Stopped,
                        Known::Failed => State::Failed,
                    },
                };
                MemberStatus {
                    name: m.spec.name.clone(),
                    agent: m.spec.agent.to_string(),
                    state,
                    fail_count: m.fail_count,
                    migration_threshold: g.spec.migration_threshold,
                    last_failure: m.last_failure.as_ref().map(|f| FailureStatus {
                        op: f.op,
                        exit_code: f.exit_code,
                        exit_code_name: f.exit_code_name.to_owned(),
                        exit_reason: f.exit_reason.clone(),
                        ago_ms: millis(now.saturating_duration_since(f.at)),
                        duration_ms: millis(f.elapsed),
                        at: f.at,
                    }),
                }
            })
            .collect();
        let any = |s: State| members.iter().any(|m| m.state == s);
        let state = if g.blocked.is_some() {
            State::Blocked
        } else if unmanaged {
            State::Unmanaged
        } else if any(State::Unknown) {
            State::Unknown
        } else if any(State::Probing) {
            State::Probing
        } else if any(State::Stopping) {
            State::Stopping
        } else if any(State::Starting) {
            State::Starting
        } else if any(State::Failed) {
            State::Failed
        } else if members.iter().all(|m| m.state == State::Started) {
            State::Started
        } else if members.iter().all(|m| m.state == State::Stopped) {
            State::Stopped
        } else {
            State::Partial
        };
        GroupStatus {
            name: g.spec.name.clone(),
            follows: g.spec.follows.name().to_owned(),
            active: g.active,
            state,
            managed: !unmanaged,
            blocked: g.blocked.as_ref().map(|(_, r)| r.clone()),
            ban: g.ban.as_ref().map(|b| BanStatus {
                reason: b.reason.clone(),
                expires_in_ms: b.until.map(|u| millis(u.saturating_duration_since(now))),
                until: b.until,
            }),
            members,
        }
    }

    fn debug_check(&self) {
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// Asserts the engine's invariants (debug builds run it after every
    /// input):
    /// - the index of calls in flight and the groups' calls agree, at
    ///   most one per group, for a member of that group;
    /// - a blocked group has nothing in flight;
    /// - an idle, managed, unblocked group has converged: nothing to
    ///   probe, stop or start, no monitor overdue;
    /// - a release is owed only while the role is not held;
    /// - nothing that expires is past its expiry.
    pub fn check_invariants(&self) {
        let flying = self.groups.iter().filter(|g| g.in_flight.is_some()).count();
        assert_eq!(flying, self.by_op.len(), "calls in flight disagree");
        let now = self.now;
        for (gi, g) in self.groups.iter().enumerate() {
            if let Some(f) = g.in_flight {
                assert_eq!(
                    self.by_op.get(&f.id),
                    Some(&gi),
                    "{}: {} not indexed",
                    g.spec.name,
                    f.id
                );
                assert!(f.member < g.members.len());
                assert!(
                    g.blocked.is_none(),
                    "{}: blocked with a call in flight",
                    g.spec.name
                );
            }
            if g.in_flight.is_none() {
                assert_eq!(
                    self.next_op(g),
                    None,
                    "{}: idle but not converged",
                    g.spec.name
                );
            }
            if g.release_owed {
                assert!(!g.active, "{}: release owed while active", g.spec.name);
            }
            if let Some(now) = now {
                if let Some(u) = g.ban.as_ref().and_then(|b| b.until) {
                    assert!(u > now, "{}: ban past its expiry", g.spec.name);
                }
                for m in &g.members {
                    if let Some(e) = Self::count_expiry(&g.spec, m) {
                        assert!(e > now, "{}: fail count past its expiry", m.spec.name);
                    }
                    if g.in_flight.is_none()
                        && self.started
                        && !self.unmanaged(g)
                        && g.blocked.is_none()
                        && m.known == Known::Running
                    {
                        assert!(
                            m.next_monitor.is_none_or(|t| t > now),
                            "{}: monitor overdue",
                            m.spec.name
                        );
                    }
                }
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
