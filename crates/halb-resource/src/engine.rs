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

    /// An id from its number (a shell that keeps ids as numbers, tests).
    pub fn from_raw(n: u64) -> OpId {
        OpId(n)
    }
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op#{}", self.0)
    }
}

/// An agent operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// `on_fail = move` of a monitor.
    OnFail,
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
    /// A probe found it running where it should not (the group does not
    /// run here, or a member before it does not run): it is stopped next.
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
    /// A reload changed the group: the old one is stopped, this is the new
    /// one (its members are probed).
    Reconfigured,
    /// A reload removed the group, and it is stopped (or unmanaged).
    Removed,
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
            EventKind::Reconfigured => write!(f, ": reconfigured"),
            EventKind::Removed => write!(f, ": removed from the configuration"),
        }
    }
}

/// An operator's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Clear fail counts, last failures, bans, blocks and `on_fail =
    /// stop` holds, and re-probe (a healthy member is adopted again,
    /// never restarted). `group: None`: every group; `member` (with a
    /// group only): only that member's counts and last failure are
    /// cleared (the group's ban, block and holds go too).
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroupStatus {
    pub name: String,
    /// The followed instance or sync group.
    pub follows: String,
    /// The followed instance is master here.
    pub active: bool,
    /// A reload removed or changed it: it is being stopped, then dropped
    /// or replaced.
    pub reconfiguring: bool,
    pub state: State,
    pub managed: bool,
    /// Why it is blocked (a stop failed: a member may still run).
    pub blocked: Option<String>,
    /// `on_fail = stop`: this member and the later ones are held stopped
    /// until cleanup.
    pub held_from: Option<String>,
    pub ban: Option<BanStatus>,
    pub members: Vec<MemberStatus>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BanStatus {
    pub reason: String,
    /// `None`: until cleanup.
    pub expires_in_ms: Option<u64>,
    #[serde(skip)]
    pub until: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FailureStatus {
    pub op: Op,
    pub exit_code: Option<i32>,
    pub exit_code_name: String,
    pub exit_reason: Option<String>,
    pub ago_ms: u64,
    /// How long the failed operation took.
    pub duration_ms: u64,
    #[serde(skip, default = "Instant::now")]
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
    /// The last operations, newest last (successive successful monitors
    /// are one entry).
    history: VecDeque<Done>,
}

/// One finished operation, for `halb resource show`.
#[derive(Debug, Clone)]
struct Done {
    op: Op,
    result: AgentResult,
    at: Instant,
    repeated: u32,
}

/// Operations kept per member for `halb resource show`.
pub const HISTORY: usize = 10;

/// One of a member's last operations ([`Engine::history`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OpRecord {
    pub op: Op,
    pub exit_code: Option<i32>,
    pub exit_code_name: String,
    pub exit_reason: Option<String>,
    /// What the agent wrote (bounded by the shell).
    pub stdout: String,
    pub stderr: String,
    pub ago_ms: u64,
    pub duration_ms: u64,
    /// Successive successful monitors are one record: how many.
    pub repeated: u32,
    #[serde(skip, default = "Instant::now")]
    pub at: Instant,
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
    /// The integration has said the role at least once: until then
    /// nothing is started or stopped (a restarted halb does not know yet
    /// whether it is master; its probes find what runs, and wait).
    role_known: bool,
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
    /// Removed or changed by a reload: stopped, then dropped (or replaced
    /// by `successor`).
    retiring: bool,
    successor: Option<GroupSpec>,
}

impl Group {
    fn should_run(&self) -> bool {
        self.active && self.ban.is_none() && !self.retiring
    }

    fn new(spec: GroupSpec) -> Group {
        Group {
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
                    history: VecDeque::new(),
                })
                .collect(),
            spec,
            active: false,
            role_known: false,
            in_flight: None,
            blocked: None,
            ban: None,
            maintenance: false,
            stop_from: None,
            hold_from: None,
            release_owed: false,
            retiring: false,
            successor: None,
        }
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

    /// The members `which` selects, but the one in flight, are probed
    /// again (not while blocked: cleanup re-probes everything then).
    fn reprobe(&mut self, which: impl Fn(Known) -> bool) {
        if self.blocked.is_some() {
            return;
        }
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
        let groups = groups.into_iter().map(Group::new).collect();
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
        let now = self.advance(now);
        self.started = true;
        for gi in 0..self.groups.len() {
            self.groups[gi].reprobe(|_| true);
            self.unmanaged_event(gi, true);
        }
        self.drive_all(now);
        self.debug_check();
    }

    /// The followed instance or sync group `name` (or the group of that
    /// name) became master (`active`) or left master. Returns how many
    /// groups it concerns.
    pub fn handle_role(&mut self, name: &str, active: bool, now: Instant) -> usize {
        let now = self.advance(now);
        let mut n = 0;
        for gi in 0..self.groups.len() {
            let g = &mut self.groups[gi];
            if g.spec.name != name && g.spec.follows.name() != name {
                continue;
            }
            n += 1;
            let first = !std::mem::replace(&mut g.role_known, true);
            if first {
                // What the start-up probes found running, judged now that
                // the role is known: kept (adopted) or stopped.
                g.active = active;
                let keep = g.keep();
                let running: Vec<usize> = (0..g.members.len())
                    .filter(|&i| g.members[i].known == Known::Running)
                    .collect();
                for i in running {
                    let kind = if i < keep {
                        EventKind::Adopted
                    } else {
                        EventKind::RunningWhereItShouldNot
                    };
                    self.event(gi, Some(i), kind);
                }
                let g = &mut self.groups[gi];
                if active {
                    g.release_owed = false;
                    g.reprobe(|k| k == Known::Stopped);
                }
                continue;
            }
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
        self.drive_all(now);
        self.debug_check();
        n
    }

    /// A reload: the new set of groups. Returns one line per change.
    ///
    /// - A group whose spec is unchanged keeps all its state.
    /// - One whose members and followed instance are unchanged takes its
    ///   new settings in place (thresholds, timeouts, `managed`).
    /// - One whose members or followed instance changed is **stopped** (in
    ///   reverse, as on losing the role), then replaced by the new one,
    ///   which probes and starts as usual (the role carries over when it
    ///   follows the same instance). Nothing is started twice and an old
    ///   member never runs beside the new ones.
    /// - A removed group is stopped, then dropped.
    /// - A new group starts inactive: the integration sends the current
    ///   roles again ([`Engine::handle_role`]) after every reload.
    ///
    /// A blocked group is replaced or dropped only after cleanup; an
    /// unmanaged one at once, its members left as they are.
    pub fn handle_groups(&mut self, groups: Vec<GroupSpec>, now: Instant) -> Vec<String> {
        let now = self.advance(now);
        let mut changes = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for spec in groups {
            seen.insert(spec.name.clone());
            let Some(gi) = self.groups.iter().position(|g| g.spec.name == spec.name) else {
                changes.push(format!("resource group {}: added", spec.name));
                self.groups.push(Group::new(spec));
                let gi = self.groups.len() - 1;
                if self.started {
                    self.unmanaged_event(gi, true);
                }
                continue;
            };
            let g = &self.groups[gi];
            if g.retiring {
                // Already on its way out: the newest spec succeeds it.
                if g.successor.as_ref() != Some(&spec) {
                    changes.push(format!("resource group {}: changed again", spec.name));
                }
                self.set_managed(gi, spec.managed);
                self.groups[gi].successor = Some(spec);
                continue;
            }
            if g.spec == spec {
                continue;
            }
            // What the new config says of management applies at once,
            // also to the old group on its way out.
            self.set_managed(gi, spec.managed);
            let g = &mut self.groups[gi];
            if g.spec.members == spec.members && g.spec.follows == spec.follows {
                changes.push(format!("resource group {}: settings changed", spec.name));
                g.spec = spec;
                continue;
            }
            changes.push(format!(
                "resource group {}: members or followed instance changed: stopped, then started anew",
                spec.name
            ));
            g.retiring = true;
            g.successor = Some(spec);
        }
        for g in &mut self.groups {
            if !seen.contains(&g.spec.name) && !g.retiring {
                changes.push(format!("resource group {}: removed: stopped", g.spec.name));
                g.retiring = true;
            }
        }
        self.drive_all(now);
        self.debug_check();
        changes
    }

    /// The shell ran `id`. Returns false (and changes nothing) for a stale
    /// id: one the engine gave up on, or never issued.
    pub fn handle_result(&mut self, id: OpId, result: AgentResult, now: Instant) -> bool {
        let now = self.advance(now);
        let fresh = match self.by_op.remove(&id) {
            Some(gi) => {
                if let Some(f) = self.groups[gi].in_flight.take() {
                    self.apply(gi, f, result, now);
                }
                true
            }
            None => {
                self.stale += 1;
                false
            }
        };
        self.drive_all(now);
        self.debug_check();
        fresh
    }

    /// Time passed: operation deadlines, fail count and ban expiry, the
    /// monitors that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        self.drive_all(now);
        self.debug_check();
    }

    /// An operator's command.
    pub fn handle_command(&mut self, command: Command, now: Instant) -> Result<(), CommandError> {
        let now = self.advance(now);
        let r = self.command(command);
        self.drive_all(now);
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

    /// A member's last operations (at most [`HISTORY`], oldest first),
    /// with their output, for `halb resource show`.
    pub fn history(&self, group: &str, member: &str, now: Instant) -> Option<Vec<OpRecord>> {
        let m = self
            .group(group)?
            .members
            .iter()
            .find(|m| m.spec.name == member)?;
        Some(
            m.history
                .iter()
                .map(|d| OpRecord {
                    op: d.op,
                    exit_code: d.result.exit_code(),
                    exit_code_name: d.result.code_name().to_owned(),
                    exit_reason: d.result.exit_reason.clone(),
                    stdout: d.result.stdout.clone(),
                    stderr: d.result.stderr.clone(),
                    ago_ms: millis(now.saturating_duration_since(d.at)),
                    duration_ms: millis(d.result.elapsed),
                    repeated: d.repeated,
                    at: d.at,
                })
                .collect(),
        )
    }

    /// Results ignored because their id was stale.
    pub fn stale_results(&self) -> u64 {
        self.stale
    }

    /// Operations in flight (at most one per group).
    pub fn in_flight(&self) -> usize {
        self.by_op.len()
    }

    /// Whether nothing of `group` runs or is being run here: every
    /// member known stopped and no call in flight (or the group is not
    /// managed by halb), and not blocked (a failed stop: a member may
    /// still run). An unknown group: true.
    pub fn is_stopped_here(&self, group: &str) -> bool {
        self.group(group).is_none_or(|g| {
            g.blocked.is_none() && (self.unmanaged(g) || (g.in_flight.is_none() && g.all_stopped()))
        })
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
    fn advance(&mut self, now: Instant) -> Instant {
        let now = self.now.map_or(now, |n| n.max(now));
        self.now = Some(now);
        for gi in 0..self.groups.len() {
            if let Some(f) = self.groups[gi].in_flight {
                if f.deadline <= now {
                    self.by_op.remove(&f.id);
                    self.groups[gi].in_flight = None;
                    self.apply(gi, f, AgentResult::timed_out(f.timeout), now);
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
        now
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
    fn apply(&mut self, gi: usize, f: InFlight, r: AgentResult, now: Instant) {
        let i = f.member;
        remember(&mut self.groups[gi].members[i].history, f.op, &r, now);
        let interval = self.groups[gi].members[i].spec.monitor.interval;
        let next_monitor = (!interval.is_zero()).then(|| now + interval);
        match f.op {
            Op::Probe => {
                let m = &mut self.groups[gi].members[i];
                if r.running() {
                    m.known = Known::Running;
                    m.next_monitor = next_monitor;
                    // Kept if the group runs here and every member before
                    // it runs (probes go first to last, so those are
                    // known); else it is stopped next.
                    // (Until the role is known nothing is decided: the
                    // event comes with the role, `judge_running`.)
                    if self.groups[gi].role_known {
                        let kind = if i < self.groups[gi].keep() {
                            EventKind::Adopted
                        } else {
                            EventKind::RunningWhereItShouldNot
                        };
                        self.event(gi, Some(i), kind);
                    }
                } else if r.not_running() {
                    m.known = Known::Stopped;
                } else if matches!(r.status, AgentStatus::Error(_))
                    || r.exit_code() == Some(crate::result::code::ERR_INSTALLED)
                {
                    // The agent cannot run here: nothing of it runs.
                    m.known = Known::Stopped;
                    self.fail(gi, i, Op::Probe, &r, now);
                } else {
                    m.known = Known::Failed;
                    self.fail(gi, i, Op::Probe, &r, now);
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
                    self.fail(gi, i, Op::Start, &r, now);
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
                    self.record(gi, i, Op::Stop, &r, now);
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
                    self.record(gi, i, Op::Monitor, &r, now);
                    self.event(gi, Some(i), EventKind::Recovery { on_fail });
                } else {
                    m.known = Known::Failed;
                    m.next_monitor = None;
                    self.fail(gi, i, Op::Monitor, &r, now);
                }
            }
        }
    }

    /// Records a failure (last failure, an event) without counting it.
    fn record(&mut self, gi: usize, i: usize, op: Op, r: &AgentResult, now: Instant) {
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
    /// Unmanaged (a call that was in flight when maintenance began): the
    /// failure is recorded, not counted, and nothing is done about it.
    fn fail(&mut self, gi: usize, i: usize, op: Op, r: &AgentResult, now: Instant) {
        if self.unmanaged(&self.groups[gi]) {
            self.record(gi, i, op, r, now);
            return;
        }
        {
            let m = &mut self.groups[gi].members[i];
            m.fail_count = m.fail_count.saturating_add(1);
        }
        self.record(gi, i, op, r, now);
        let g = &self.groups[gi];
        let m = &g.members[i];
        let threshold = g.spec.migration_threshold;
        // What this failure does: a monitor's on_fail, a start's
        // start_on_fail (by default from start_failure_is_fatal); a
        // probe's failure restarts.
        let on_fail = match op {
            Op::Monitor => m.spec.on_fail,
            Op::Start => m
                .spec
                .start_on_fail
                .unwrap_or(if g.spec.start_failure_is_fatal {
                    OnFail::Move
                } else {
                    OnFail::Restart
                }),
            _ => OnFail::Restart,
        };
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
            Severity::Soft if op == Op::Start && on_fail == OnFail::Move => Some((
                GiveUpReason::StartFailed,
                format!(
                    "start of {} {} ({})",
                    m.spec.name,
                    r.describe(),
                    if m.spec.start_on_fail.is_some() {
                        "start_on_fail = move"
                    } else {
                        "start_failure_is_fatal"
                    }
                ),
            )),
            Severity::Soft if on_fail == OnFail::Move => Some((
                GiveUpReason::OnFail,
                format!("{op} of {} {} (on_fail = move)", m.spec.name, r.describe()),
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
            self.ban(gi, why, reason, now);
            return;
        }
        // A failed probe is restarted; a monitor or a start follows its
        // on_fail.
        if op != Op::Probe {
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
                let reason = format!("{op} of {name} {} (on_fail = block)", r.describe());
                self.block(gi, i, reason);
            }
            // A monitor's: handled before (a failed monitor is not counted
            // then); a start's is refused by the config (taken as a
            // restart here).
            OnFail::Ignore => {
                if op == Op::Start {
                    g.stop_from = Some(g.stop_from.map_or(i, |s| s.min(i)));
                }
            }
            OnFail::Standby => {
                let reason = format!("{op} of {name} {} (on_fail = standby)", r.describe());
                self.ban_until(gi, GiveUpReason::Standby, reason, None);
            }
            // Banned above.
            OnFail::Move => {}
        }
    }

    fn ban(&mut self, gi: usize, why: GiveUpReason, reason: String, now: Instant) {
        let until = self.groups[gi].spec.failure_timeout.map(|t| now + t);
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

    /// A reload's `managed`, with its events (leaving maintenance
    /// re-probes).
    fn set_managed(&mut self, gi: usize, managed: bool) {
        let was = self.unmanaged(&self.groups[gi]);
        self.groups[gi].spec.managed = managed;
        let is = self.unmanaged(&self.groups[gi]);
        if was != is {
            if is {
                self.event(gi, None, EventKind::Unmanaged);
            } else {
                self.groups[gi].reprobe(|_| true);
                self.event(gi, None, EventKind::Managed);
            }
        }
    }

    fn drive_all(&mut self, now: Instant) {
        for gi in 0..self.groups.len() {
            self.drive(gi, now);
        }
        self.sweep();
    }

    /// The next step of one group (see the module documentation).
    fn next_op(&self, g: &Group) -> Option<(usize, Op)> {
        if !self.started || self.unmanaged(g) || g.blocked.is_some() || g.in_flight.is_some() {
            return None;
        }
        if let Some(i) = g.members.iter().position(|m| m.known == Known::Unknown) {
            return Some((i, Op::Probe));
        }
        if !g.role_known {
            return None;
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

    fn drive(&mut self, gi: usize, now: Instant) {
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
            self.issue(gi, i, op, now);
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
        let g = &self.groups[gi];
        if g.retiring
            && g.in_flight.is_none()
            && g.blocked.is_none()
            && (self.unmanaged(g) || g.all_stopped())
        {
            self.retire(gi, now);
        }
    }

    /// A retiring group is down (or unmanaged): its successor takes its
    /// place, or it goes.
    fn retire(&mut self, gi: usize, now: Instant) {
        if self.groups[gi].ban.is_some() {
            self.lift_ban(gi);
        }
        let old = &mut self.groups[gi];
        let name = old.spec.name.clone();
        match old.successor.take() {
            Some(spec) => {
                let mut new = Group::new(spec);
                // An operator's maintenance outlives a reload.
                new.maintenance = old.maintenance;
                // The same followed instance: the same role (a new one
                // starts inactive until the integration says).
                if new.spec.follows == old.spec.follows {
                    new.active = old.active;
                    new.role_known = old.role_known;
                    new.release_owed = old.release_owed;
                }
                self.groups[gi] = new;
                // (Its `managed` was the old group's since the reload.)
                self.event(gi, None, EventKind::Reconfigured);
                self.drive(gi, now);
            }
            None => {
                self.actions.push_back(Action::Event(ResourceEvent {
                    group: name,
                    member: None,
                    kind: EventKind::Removed,
                }));
                self.groups[gi].members.clear();
                self.groups[gi].successor = None;
                // Dropped by `sweep` once every group was driven.
            }
        }
    }

    /// Drops the removed groups (their slots are empty) and reindexes the
    /// calls in flight.
    fn sweep(&mut self) {
        if !self
            .groups
            .iter()
            .any(|g| g.retiring && g.members.is_empty() && g.successor.is_none())
        {
            return;
        }
        self.groups
            .retain(|g| !(g.retiring && g.members.is_empty() && g.successor.is_none()));
        self.by_op = self
            .groups
            .iter()
            .enumerate()
            .filter_map(|(gi, g)| g.in_flight.map(|f| (f.id, gi)))
            .collect();
    }

    fn issue(&mut self, gi: usize, i: usize, op: Op, now: Instant) {
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
            reconfiguring: g.retiring,
            state,
            managed: !unmanaged,
            blocked: g.blocked.as_ref().map(|(_, r)| r.clone()),
            held_from: g.hold_from.map(|i| g.members[i].spec.name.clone()),
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

/// Adds a finished operation to a member's history.
fn remember(history: &mut VecDeque<Done>, op: Op, r: &AgentResult, now: Instant) {
    if op == Op::Monitor && r.running() {
        if let Some(last) = history.back_mut() {
            if last.op == Op::Monitor && last.result.running() {
                last.result = r.clone();
                last.at = now;
                last.repeated = last.repeated.saturating_add(1);
                return;
            }
        }
    }
    if history.len() == HISTORY {
        history.pop_front();
    }
    history.push_back(Done {
        op,
        result: r.clone(),
        at: now,
        repeated: 1,
    });
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::code;
    use crate::spec::{Agent, Follows};

    fn member(name: &str) -> MemberSpec {
        let mut m = MemberSpec::new(name, Agent::Lsb(name.into()));
        m.monitor.interval = Duration::from_secs(10);
        m
    }

    fn group(name: &str, members: &[&str]) -> GroupSpec {
        GroupSpec::new(
            name,
            Follows::Instance(format!("vi_{name}")),
            members.iter().map(|m| member(m)).collect(),
        )
    }

    /// An engine, its clock, and the calls in flight.
    struct H {
        e: Engine,
        now: Instant,
        flying: Vec<(OpId, String, String, Op)>,
        events: Vec<ResourceEvent>,
        other: Vec<Action>,
    }

    impl H {
        fn new(groups: Vec<GroupSpec>) -> H {
            H {
                e: Engine::new(groups),
                now: Instant::now(),
                flying: Vec::new(),
                events: Vec::new(),
                other: Vec::new(),
            }
        }

        fn drain(&mut self) {
            while let Some(a) = self.e.poll_action() {
                match a {
                    Action::Run {
                        id,
                        group,
                        member,
                        op,
                        ..
                    } => self.flying.push((id, group, member, op)),
                    Action::Event(e) => self.events.push(e),
                    a => self.other.push(a),
                }
            }
        }

        fn start(&mut self) {
            self.e.handle_start(self.now);
            self.drain();
        }

        fn command(&mut self, c: Command) -> Result<(), CommandError> {
            let r = self.e.handle_command(c, self.now);
            self.drain();
            r
        }

        fn role(&mut self, name: &str, active: bool) {
            self.e.handle_role(name, active, self.now);
            self.drain();
        }

        fn advance(&mut self, d: Duration) {
            self.now += d;
            self.e.handle_timeout(self.now);
            self.drain();
        }

        /// Answers every call (and the ones they lead to) with `agent`,
        /// returning "member op" in the order they were made.
        fn settle(&mut self, mut agent: impl FnMut(&str, Op) -> AgentResult) -> Vec<String> {
            let mut done = Vec::new();
            for _ in 0..1000 {
                if self.flying.is_empty() {
                    return done;
                }
                let (id, _g, m, op) = self.flying.remove(0);
                done.push(format!("{m} {op}"));
                let r = agent(&m, op);
                assert!(self.e.handle_result(id, r, self.now));
                self.drain();
            }
            panic!("did not settle: {done:?}");
        }

        fn state(&self, g: usize) -> State {
            self.e.status(self.now)[g].state
        }

        fn kinds(&mut self) -> Vec<String> {
            std::mem::take(&mut self.events)
                .into_iter()
                .map(|e| {
                    let k = format!("{:?}", e.kind);
                    let k = k
                        .split([' ', '{', '('])
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    match e.member {
                        Some(m) => format!("{m} {k}"),
                        None => k,
                    }
                })
                .collect()
        }
    }

    /// Everything answers: ok, and monitors "not running" until started.
    fn stopped_world(_: &str, op: Op) -> AgentResult {
        match op {
            Op::Probe => AgentResult::code(code::NOT_RUNNING),
            _ => AgentResult::code(code::OK),
        }
    }

    fn running_world(_: &str, _: Op) -> AgentResult {
        AgentResult::code(code::OK)
    }

    fn released(group: &str) -> Vec<Action> {
        vec![Action::GroupReleased {
            group: group.into(),
        }]
    }

    /// "fs start, nginx start" as a list.
    fn seq(s: &str) -> Vec<String> {
        s.split(", ")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn start_up_probes_then_master_starts_in_order_and_backup_stops_in_reverse() {
        let mut h = H::new(vec![group("web", &["fs", "ip", "nginx"])]);
        h.start();
        assert_eq!(h.state(0), State::Probing);
        let ops = h.settle(stopped_world);
        assert_eq!(ops, seq("fs probe, ip probe, nginx probe"));
        assert_eq!(h.state(0), State::Stopped);
        assert!(h.other.is_empty());

        h.role("vi_web", true);
        let ops = h.settle(stopped_world);
        assert_eq!(
            ops,
            seq("fs probe, ip probe, nginx probe, fs start, ip start, nginx start")
        );
        assert_eq!(h.state(0), State::Started);
        assert_eq!(h.kinds(), seq("fs Started, ip Started, nginx Started"));

        h.role("vi_web", false);
        assert_eq!(h.state(0), State::Stopping);
        let ops = h.settle(stopped_world);
        assert_eq!(ops, seq("nginx stop, ip stop, fs stop"));
        assert_eq!(h.other, released("web"));
        assert_eq!(h.state(0), State::Stopped);
    }

    #[test]
    fn release_waits_for_the_call_in_flight_and_a_lost_role_stops_a_start() {
        let mut h = H::new(vec![group("web", &["fs", "nginx"])]);
        h.role("web", true); // by group name
        h.start();
        let (id, ..) = h.flying.remove(0);
        h.e.handle_result(id, AgentResult::code(7), h.now);
        h.drain();
        // nginx probe in flight; the role goes.
        h.role("vi_web", false);
        assert!(h.other.is_empty(), "nothing released while probing");
        let ops = h.settle(|m, op| match (m, op) {
            ("nginx", Op::Probe) => AgentResult::code(0),
            _ => stopped_world(m, op),
        });
        assert_eq!(ops, seq("nginx probe, nginx stop"));
        assert_eq!(
            h.kinds(),
            seq("nginx RunningWhereItShouldNot, nginx Stopped")
        );
        assert_eq!(h.other.len(), 1, "{:?}", h.other);
    }

    #[test]
    fn start_up_adopts_what_runs_where_it_should() {
        let mut h = H::new(vec![group("web", &["fs", "nginx"])]);
        h.role("vi_web", true);
        h.start();
        let ops = h.settle(running_world);
        assert_eq!(ops, seq("fs probe, nginx probe"), "never started twice");
        assert_eq!(h.kinds(), seq("fs Adopted, nginx Adopted"));
        assert_eq!(h.state(0), State::Started);
        // Monitors follow, one at a time.
        h.advance(Duration::from_secs(10));
        assert_eq!(h.flying.len(), 1);
        let ops = h.settle(running_world);
        assert_eq!(ops, seq("fs monitor, nginx monitor"));
    }

    #[test]
    fn a_member_running_out_of_order_is_stopped_then_started_in_order() {
        let mut h = H::new(vec![group("web", &["fs", "nginx"])]);
        h.role("vi_web", true);
        h.start();
        let ops = h.settle(|m, op| match (m, op) {
            ("nginx", Op::Probe) => AgentResult::code(0),
            _ => stopped_world(m, op),
        });
        assert_eq!(
            ops,
            seq("fs probe, nginx probe, nginx stop, fs start, nginx start")
        );
        assert_eq!(
            h.kinds(),
            seq("nginx RunningWhereItShouldNot, nginx Stopped, fs Started, nginx Started")
        );
    }

    #[test]
    fn a_failed_monitor_restarts_it_and_every_later_member() {
        let mut h = H::new(vec![group("web", &["fs", "ip", "nginx"])]);
        h.role("vi_web", true);
        h.start();
        h.settle(running_world);
        h.kinds();
        h.advance(Duration::from_secs(10));
        let ops = h.settle(|m, op| match (m, op) {
            ("ip", Op::Monitor) => AgentResult::code(7),
            _ => running_world(m, op),
        });
        assert_eq!(
            ops,
            seq("fs monitor, ip monitor, nginx stop, ip stop, ip start, nginx start")
        );
        assert_eq!(
            h.kinds(),
            seq("ip Failed, ip Recovery, nginx Stopped, ip Stopped, ip Restarted, nginx Restarted")
        );
        let st = &h.e.status(h.now)[0];
        assert_eq!(st.state, State::Started);
        assert_eq!(st.members[1].fail_count, 1);
        let f = st.members[1].last_failure.as_ref().unwrap();
        assert_eq!((f.op, f.exit_code), (Op::Monitor, Some(7)));
        assert_eq!(f.exit_code_name, "not running");
    }

    #[test]
    fn migration_threshold_bans_until_the_failure_timeout() {
        let mut g = group("web", &["fs", "nginx"]);
        g.migration_threshold = 2;
        g.failure_timeout = Some(Duration::from_secs(60));
        let mut h = H::new(vec![g]);
        h.role("vi_web", true);
        h.start();
        h.settle(running_world);
        let nginx_fails = |m: &str, op: Op| match (m, op) {
            ("nginx", Op::Monitor) => AgentResult::code(1),
            _ => running_world(m, op),
        };
        h.advance(Duration::from_secs(10));
        h.settle(nginx_fails);
        assert!(h.other.is_empty());
        h.advance(Duration::from_secs(10));
        let ops = h.settle(nginx_fails);
        assert_eq!(ops, seq("fs monitor, nginx monitor, nginx stop, fs stop"));
        let until = h.now + Duration::from_secs(60);
        assert_eq!(
            h.other,
            vec![Action::GiveUp {
                group: "web".into(),
                until: Some(until),
                reason: GiveUpReason::MigrationThreshold
            }]
        );
        h.other.clear();
        let st = &h.e.status(h.now)[0];
        assert_eq!(st.state, State::Stopped);
        assert_eq!(st.ban.as_ref().unwrap().expires_in_ms, Some(60_000));
        assert_eq!(st.members[1].fail_count, 2);
        // The director faults the instance; it comes back: no start while banned.
        h.role("vi_web", false);
        assert_eq!(h.other, released("web"));
        h.other.clear();
        h.role("vi_web", true);
        h.settle(stopped_world);
        assert_eq!(h.e.poll_timeout(), Some(until));
        h.advance(Duration::from_secs(59));
        assert_eq!(h.state(0), State::Stopped);
        assert!(h.flying.is_empty());
        h.advance(Duration::from_secs(1));
        assert_eq!(
            h.other,
            vec![Action::BanLifted {
                group: "web".into()
            }]
        );
        let ops = h.settle(stopped_world);
        assert_eq!(ops, seq("fs probe, nginx probe, fs start, nginx start"));
        let st = &h.e.status(h.now)[0];
        assert_eq!(st.members[1].fail_count, 0, "expired with the ban");
        assert!(st.ban.is_none());
    }

    #[test]
    fn fail_counts_expire_after_the_failure_timeout() {
        let mut g = group("web", &["nginx"]);
        g.migration_threshold = 2;
        g.failure_timeout = Some(Duration::from_secs(15));
        let mut h = H::new(vec![g]);
        h.role("vi_web", true);
        h.start();
        h.settle(running_world);
        let fails = |_: &str, op: Op| match op {
            Op::Monitor => AgentResult::code(1),
            _ => AgentResult::code(0),
        };
        h.advance(Duration::from_secs(10));
        h.settle(fails);
        assert_eq!(h.e.status(h.now)[0].members[0].fail_count, 1);
        h.advance(Duration::from_secs(15));
        assert_eq!(h.e.status(h.now)[0].members[0].fail_count, 0);
        h.settle(running_world);
        h.advance(Duration::from_secs(10));
        h.settle(fails);
        assert!(h.other.is_empty(), "one failure in 15 s: no ban");
    }

    #[test]
    fn a_failed_start_is_fatal_by_default_and_stops_what_started() {
        let mut h = H::new(vec![group("web", &["fs", "nginx"])]);
        h.role("vi_web", true);
        h.start();
        let ops = h.settle(|m, op| match (m, op) {
            ("nginx", Op::Start) => AgentResult {
                exit_reason: Some("no config".into()),
                ..AgentResult::code(1)
            },
            _ => stopped_world(m, op),
        });
        assert_eq!(
            ops,
            seq("fs probe, nginx probe, fs start, nginx start, nginx stop, fs stop")
        );
        assert!(matches!(
            h.other[..],
            [Action::GiveUp {
                until: None,
                reason: GiveUpReason::StartFailed,
                ..
            }]
        ));
        let st = &h.e.status(h.now)[0];
        let f = st.members[1].last_failure.as_ref().unwrap();
        assert_eq!(f.exit_reason.as_deref(), Some("no config"));
        assert!(st
            .ban
            .as_ref()
            .unwrap()
            .reason
            .contains("start_failure_is_fatal"));
        // Cleanup lifts it and starts again.
        h.command(Command::Cleanup {
            group: None,
            member: None,
        })
        .unwrap();
        assert_eq!(
            h.other[1],
            Action::BanLifted {
                group: "web".into()
            }
        );
        let ops = h.settle(stopped_world);
        assert_eq!(ops, seq("fs probe, nginx probe, fs start, nginx start"));
    }

    #[test]
    fn a_failed_start_that_is_not_fatal_is_retried() {
        let mut g = group("web", &["nginx"]);
        g.start_failure_is_fatal = false;
        g.migration_threshold = 3;
        let mut h = H::new(vec![g]);
        h.role("vi_web", true);
        h.start();
        let ops = h.settle(|_, op| match op {
            Op::Start => AgentResult::code(1),
            _ => stopped_world("", op),
        });
        assert_eq!(
            ops,
            seq("nginx probe, nginx start, nginx stop, nginx start, nginx stop, nginx start, nginx stop")
        );
        assert!(matches!(
            h.other[..],
            [Action::GiveUp {
                reason: GiveUpReason::MigrationThreshold,
                ..
            }]
        ));
    }

    #[test]
    fn a_hard_error_bans_at_once_and_a_missing_agent_is_not_stopped() {
        let mut h = H::new(vec![group("web", &["fs", "nginx"])]);
        h.start();
        let ops = h.settle(|m, op| match (m, op) {
            ("nginx", Op::Probe) => AgentResult::code(5),
            _ => stopped_world(m, op),
        });
        assert_eq!(
            ops,
            seq("fs probe, nginx probe"),
            "no stop of what is not installed"
        );
        assert!(matches!(
            h.other[..],
            [Action::GiveUp {
                reason: GiveUpReason::HardError,
                ..
            }]
        ));
        assert_eq!(h.state(0), State::Stopped);
    }

    #[test]
    fn a_failed_stop_blocks_the_group_and_it_is_never_reported_stopped() {
        let mut h = H::new(vec![group("web", &["fs", "nginx"])]);
        h.role("vi_web", true);
        h.start();
        h.settle(running_world);
        h.role("vi_web", false);
        let ops = h.settle(|m, op| match (m, op) {
            ("fs", Op::Stop) => AgentResult::code(1),
            _ => running_world(m, op),
        });
        assert_eq!(ops, seq("nginx stop, fs stop"));
        assert!(h.other.is_empty(), "never released: {:?}", h.other);
        let st = &h.e.status(h.now)[0];
        assert_eq!(st.state, State::Blocked);
        assert_eq!(st.members[0].state, State::Blocked);
        assert!(st.blocked.as_ref().unwrap().contains("may still run"));
        assert!(h.kinds().contains(&"fs Blocked".to_owned()));
        // Nothing more: no monitors, no starts, even as master again.
        h.role("vi_web", true);
        h.advance(Duration::from_secs(100));
        assert!(h.flying.is_empty());
        assert_eq!(h.e.poll_timeout(), None);
        let st = &h.e.status(h.now)[0];
        assert_eq!(st.state, State::Blocked);
        assert_eq!(st.members[1].state, State::Stopped, "not shown as probing");
        // The operator cleans up: re-probe, then what the role says.
        h.role("vi_web", false);
        h.command(Command::Cleanup {
            group: Some("web".into()),
            member: None,
        })
        .unwrap();
        let ops = h.settle(stopped_world);
        assert_eq!(ops, seq("fs probe, nginx probe"));
        assert_eq!(h.other, released("web"));
    }

    #[test]
    fn a_stop_that_never_answers_times_out_blocks_and_its_late_result_is_stale() {
        let mut h = H::new(vec![group("web", &["fs"])]);
        h.role("vi_web", true);
        h.start();
        h.settle(stopped_world);
        h.role("vi_web", false);
        let (id, _, _, op) = h.flying.remove(0);
        assert_eq!(op, Op::Stop);
        assert_eq!(
            h.e.poll_timeout(),
            Some(h.now + DEFAULT_TIMEOUT_FOR_TEST + OP_GRACE)
        );
        h.advance(DEFAULT_TIMEOUT_FOR_TEST + OP_GRACE);
        assert_eq!(h.state(0), State::Blocked);
        assert!(!h.e.handle_result(id, AgentResult::code(0), h.now));
        assert!(!h.e.handle_result(OpId(999), AgentResult::code(0), h.now));
        assert_eq!(h.e.stale_results(), 2);
        assert_eq!(h.state(0), State::Blocked, "a stale result changes nothing");
        let f = h.e.status(h.now)[0].members[0]
            .last_failure
            .clone()
            .unwrap();
        assert_eq!(f.exit_code_name, "timed out");
    }

    const DEFAULT_TIMEOUT_FOR_TEST: Duration = crate::spec::DEFAULT_TIMEOUT;

    #[test]
    fn on_fail_stop_ignore_block_standby() {
        let run = |on_fail: OnFail| {
            let mut g = group("web", &["fs", "nginx"]);
            g.members[0].on_fail = on_fail;
            let mut h = H::new(vec![g]);
            h.role("vi_web", true);
            h.start();
            h.settle(running_world);
            h.advance(Duration::from_secs(10));
            let ops = h.settle(|m, op| match (m, op) {
                ("fs", Op::Monitor) => AgentResult::code(7),
                _ => running_world(m, op),
            });
            (h, ops)
        };
        let (mut h, ops) = run(OnFail::Stop);
        assert_eq!(ops, seq("fs monitor, nginx stop, fs stop"));
        assert_eq!(h.state(0), State::Stopped);
        h.advance(Duration::from_secs(100));
        assert!(h.flying.is_empty(), "held stopped until cleanup");
        assert_eq!(h.e.status(h.now)[0].held_from.as_deref(), Some("fs"));

        let (mut h, ops) = run(OnFail::Ignore);
        assert_eq!(ops, seq("fs monitor, nginx monitor"));
        assert_eq!(h.state(0), State::Started);
        assert_eq!(h.e.status(h.now)[0].members[0].fail_count, 0);
        assert!(h.e.status(h.now)[0].members[0].last_failure.is_some());
        h.advance(Duration::from_secs(10));
        assert_eq!(h.flying.len(), 1, "monitors go on");

        let (mut h, ops) = run(OnFail::Block);
        assert_eq!(ops, seq("fs monitor"));
        assert_eq!(h.state(0), State::Blocked);
        h.advance(Duration::from_secs(100));
        assert!(h.flying.is_empty());

        let (h, ops) = run(OnFail::Standby);
        assert_eq!(ops, seq("fs monitor, nginx stop, fs stop"));
        assert!(matches!(
            h.other[..],
            [Action::GiveUp {
                until: None,
                reason: GiveUpReason::Standby,
                ..
            }]
        ));
    }

    #[test]
    fn start_on_fail_per_operation() {
        // nginx's start fails once (exit 1), then succeeds.
        let run = |on_fail: Option<OnFail>| {
            let mut g = group("web", &["fs", "nginx"]);
            g.failure_timeout = Some(Duration::from_secs(60));
            g.members[1].start_on_fail = on_fail;
            let mut h = H::new(vec![g]);
            h.role("vi_web", true);
            h.start();
            let mut failed = false;
            let ops = h.settle(|m, op| match (m, op) {
                ("nginx", Op::Start) if !failed => {
                    failed = true;
                    AgentResult::code(1)
                }
                _ => stopped_world(m, op),
            });
            (h, ops)
        };
        // restart: stopped and started again in place; no ban.
        let (mut h, ops) = run(Some(OnFail::Restart));
        assert_eq!(
            ops,
            seq("fs probe, nginx probe, fs start, nginx start, nginx stop, nginx start")
        );
        assert!(h.other.is_empty(), "{:?}", h.other);
        assert_eq!(h.state(0), State::Started);
        assert!(h.kinds().contains(&"nginx Recovery".to_owned()));

        // move (also the default, start_failure_is_fatal): banned until
        // the failure timeout, everything stopped.
        for on_fail in [None, Some(OnFail::Move)] {
            let (h, ops) = run(on_fail);
            assert_eq!(
                ops,
                seq("fs probe, nginx probe, fs start, nginx start, nginx stop, fs stop")
            );
            assert!(
                matches!(
                    h.other[..],
                    [Action::GiveUp {
                        until: Some(_),
                        reason: GiveUpReason::StartFailed,
                        ..
                    }]
                ),
                "{:?}",
                h.other
            );
        }

        // stop: nginx (which may have half started) is stopped and held
        // stopped until cleanup; fs keeps running, nothing moves.
        let (mut h, ops) = run(Some(OnFail::Stop));
        assert_eq!(
            ops,
            seq("fs probe, nginx probe, fs start, nginx start, nginx stop")
        );
        assert!(h.other.is_empty());
        h.advance(Duration::from_secs(100));
        assert_eq!(
            h.settle(running_world),
            seq("fs monitor"),
            "only fs's monitor"
        );
        assert_eq!(h.e.status(h.now)[0].held_from.as_deref(), Some("nginx"));

        // block: nothing more is done for the group here.
        let (mut h, ops) = run(Some(OnFail::Block));
        assert_eq!(ops, seq("fs probe, nginx probe, fs start, nginx start"));
        assert_eq!(h.state(0), State::Blocked);
        h.advance(Duration::from_secs(100));
        assert!(h.flying.is_empty());

        // standby: banned until cleanup.
        let (h, _) = run(Some(OnFail::Standby));
        assert!(matches!(
            h.other[..],
            [Action::GiveUp {
                until: None,
                reason: GiveUpReason::Standby,
                ..
            }]
        ));
    }

    #[test]
    fn a_failed_monitor_with_on_fail_move_bans_until_the_failure_timeout() {
        let mut g = group("web", &["fs", "nginx"]);
        g.failure_timeout = Some(Duration::from_secs(60));
        g.members[1].on_fail = OnFail::Move;
        let mut h = H::new(vec![g]);
        h.role("vi_web", true);
        h.start();
        h.settle(stopped_world);
        h.advance(Duration::from_secs(10));
        let ops = h.settle(|m, op| match (m, op) {
            ("nginx", Op::Monitor) => AgentResult::code(7),
            _ => running_world(m, op),
        });
        assert_eq!(ops, seq("fs monitor, nginx monitor, nginx stop, fs stop"));
        assert!(matches!(
            h.other[..],
            [Action::GiveUp {
                until: Some(_),
                reason: GiveUpReason::OnFail,
                ..
            }]
        ));
        // The ban ends with the failure timeout.
        h.advance(Duration::from_secs(60));
        assert!(h
            .other
            .iter()
            .any(|a| matches!(a, Action::BanLifted { .. })));
    }

    #[test]
    fn maintenance_stops_every_call_and_leaving_it_probes() {
        let mut h = H::new(vec![
            group("web", &["fs", "nginx"]),
            group("db", &["mysql"]),
        ]);
        h.role("vi_web", true);
        h.role("vi_db", false);
        h.start();
        h.settle(running_world);
        h.command(Command::Maintenance {
            group: Some("web".into()),
            on: true,
        })
        .unwrap();
        assert_eq!(h.state(0), State::Unmanaged);
        h.advance(Duration::from_secs(30));
        let ops = h.settle(running_world);
        assert!(ops.is_empty(), "{ops:?}");
        // Losing the role releases at once: halb does not own it now.
        h.role("vi_web", false);
        assert_eq!(h.other, released("web"));
        h.other.clear();
        h.role("vi_web", true);
        h.command(Command::Maintenance {
            group: None,
            on: false,
        })
        .unwrap();
        // nginx was killed meanwhile: the probe finds it, it is started.
        let ops = h.settle(|m, op| match (m, op) {
            ("nginx", Op::Probe) => AgentResult::code(7),
            _ => running_world(m, op),
        });
        assert_eq!(ops, seq("fs probe, nginx probe, nginx start"));
        let unknown = h.e.handle_command(
            Command::Maintenance {
                group: Some("nope".into()),
                on: true,
            },
            h.now,
        );
        assert_eq!(unknown, Err(CommandError::NoGroup("nope".into())));
    }

    #[test]
    fn groups_run_in_parallel_one_call_each() {
        let mut h = H::new(vec![
            group("web", &["fs", "nginx"]),
            group("db", &["mysql"]),
        ]);
        h.start();
        assert_eq!(h.flying.len(), 2);
        assert_eq!(h.e.in_flight(), 2);
        let groups: Vec<_> = h.flying.iter().map(|f| f.1.as_str()).collect();
        assert_eq!(groups, ["web", "db"]);
    }

    #[test]
    fn restart_command_restarts_from_that_member() {
        let mut h = H::new(vec![group("web", &["fs", "ip", "nginx"])]);
        h.role("vi_web", true);
        h.start();
        h.settle(running_world);
        let restart = |m: &str| Command::Restart {
            group: "web".into(),
            member: m.into(),
        };
        h.e.handle_command(restart("ip"), h.now).unwrap();
        h.drain();
        let ops = h.settle(running_world);
        assert_eq!(ops, seq("nginx stop, ip stop, ip start, nginx start"));
        assert!(matches!(
            h.e.handle_command(restart("xx"), h.now),
            Err(CommandError::NoMember { .. })
        ));
        h.role("vi_web", false);
        h.settle(running_world);
        assert!(matches!(
            h.e.handle_command(restart("ip"), h.now),
            Err(CommandError::NotRunning { .. })
        ));
    }

    #[test]
    fn unmanaged_groups_are_never_called() {
        let mut g = group("web", &["fs"]);
        g.managed = false;
        let mut h = H::new(vec![g]);
        h.role("vi_web", true);
        h.start();
        assert!(h.flying.is_empty());
        assert_eq!(h.kinds(), seq("Unmanaged"));
        assert_eq!(h.state(0), State::Unmanaged);
    }

    #[test]
    fn history_keeps_the_last_operations_with_their_output() {
        let mut h = H::new(vec![group("web", &["nginx"])]);
        h.role("vi_web", true);
        h.start();
        h.settle(|_, op| AgentResult {
            stdout: format!("{op} said hello\n"),
            ..stopped_world("", op)
        });
        for _ in 0..3 {
            h.advance(Duration::from_secs(10));
            h.settle(running_world);
        }
        let hist = h.e.history("web", "nginx", h.now).unwrap();
        let ops: Vec<_> = hist.iter().map(|r| (r.op, r.repeated)).collect();
        assert_eq!(ops, [(Op::Probe, 1), (Op::Start, 1), (Op::Monitor, 3)]);
        assert_eq!(hist[0].exit_code_name, "not running");
        assert_eq!(hist[1].stdout, "start said hello\n");
        assert_eq!(hist[2].ago_ms, 0);
        let v = serde_json::to_value(&hist[1]).unwrap();
        assert_eq!(v["op"], "start");
        assert_eq!(v["exit_code"], 0);
        assert!(h.e.history("web", "nope", h.now).is_none());
        // Bounded.
        for _ in 0..2 * HISTORY {
            h.command(Command::Restart {
                group: "web".into(),
                member: "nginx".into(),
            })
            .unwrap();
            h.settle(running_world);
        }
        assert_eq!(h.e.history("web", "nginx", h.now).unwrap().len(), HISTORY);
    }

    #[test]
    fn reload_keeps_what_is_unchanged_and_replaces_what_changed() {
        let web = group("web", &["fs", "nginx"]);
        let db = group("db", &["mysql"]);
        let mut h = H::new(vec![web.clone(), db.clone()]);
        h.role("vi_web", true);
        h.role("vi_db", true);
        h.start();
        h.settle(stopped_world);
        h.kinds();
        // Unchanged: nothing happens.
        let changes = h.e.handle_groups(vec![web.clone(), db.clone()], h.now);
        h.drain();
        assert!(changes.is_empty() && h.flying.is_empty());
        // Settings only: in place.
        let mut web2 = web.clone();
        web2.migration_threshold = 3;
        let changes = h.e.handle_groups(vec![web2.clone(), db.clone()], h.now);
        h.drain();
        assert_eq!(changes, ["resource group web: settings changed"]);
        assert!(h.flying.is_empty());
        assert_eq!(h.e.status(h.now)[0].members[0].migration_threshold, 3);
        // A member added: the old group stops in reverse, the new one
        // probes and starts in order; db is removed (stopped, dropped);
        // cache is new (inactive until its role is said).
        let mut web3 = web2.clone();
        web3.members.insert(1, member("ip"));
        let cache = group("cache", &["memcached"]);
        let changes = h.e.handle_groups(vec![web3, cache], h.now);
        h.drain();
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(h.e.status(h.now)[0].reconfiguring);
        let ops = h.settle(stopped_world);
        assert_eq!(
            ops,
            seq("nginx stop, mysql stop, memcached probe, fs stop, fs probe, ip probe, nginx probe, fs start, ip start, nginx start")
        );
        let kinds = h.kinds();
        assert!(kinds.contains(&"Reconfigured".to_owned()), "{kinds:?}");
        assert!(kinds.contains(&"Removed".to_owned()), "{kinds:?}");
        let names: Vec<_> = h.e.groups().collect();
        assert_eq!(names, ["web", "cache"]);
        let st = h.e.status(h.now);
        assert_eq!((st[0].state, st[0].reconfiguring), (State::Started, false));
        assert_eq!(st[0].members.len(), 3);
        assert_eq!(st[1].state, State::Stopped);
        h.role("vi_cache", true);
        assert_eq!(
            h.settle(stopped_world),
            seq("memcached probe, memcached start")
        );
    }

    #[test]
    fn a_blocked_group_is_replaced_only_after_cleanup() {
        let web = group("web", &["fs"]);
        let mut h = H::new(vec![web.clone()]);
        h.role("vi_web", true);
        h.start();
        h.settle(stopped_world);
        let mut web2 = web.clone();
        web2.members[0].stop_timeout = Duration::from_secs(5);
        h.e.handle_groups(vec![web2], h.now);
        h.drain();
        let ops = h.settle(|_, op| match op {
            Op::Stop => AgentResult::code(1),
            _ => stopped_world("", op),
        });
        assert_eq!(ops, seq("fs stop"));
        assert_eq!(h.state(0), State::Blocked);
        h.advance(Duration::from_secs(60));
        assert!(h.flying.is_empty(), "still blocked, still the old group");
        h.command(Command::Cleanup {
            group: None,
            member: None,
        })
        .unwrap();
        // The old group's re-probe finds it stopped: it goes, the new one
        // probes and starts.
        let ops = h.settle(stopped_world);
        assert_eq!(ops, seq("fs probe, fs probe, fs start"));
        assert_eq!(
            h.e.member_spec("web", "fs").unwrap().stop_timeout,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn nothing_is_started_or_stopped_until_the_role_is_known() {
        let mut h = H::new(vec![group("web", &["fs", "nginx"])]);
        h.start();
        // Running (a restarted halb): probed, then left alone, monitored.
        let ops = h.settle(running_world);
        assert_eq!(ops, seq("fs probe, nginx probe"));
        h.advance(Duration::from_secs(11));
        let ops = h.settle(running_world);
        assert!(ops.iter().all(|o| o.ends_with("monitor")), "{ops:?}");
        // Master after all: adopted (said now, with the role), nothing
        // started.
        let adopted = |h: &H| {
            h.events
                .iter()
                .filter(|e| e.kind == EventKind::Adopted)
                .count()
        };
        assert_eq!(adopted(&h), 0, "{:?}", h.events);
        h.role("vi_web", true);
        assert_eq!(adopted(&h), 2, "{:?}", h.events);
        let ops = h.settle(running_world);
        assert!(
            ops.iter()
                .all(|o| !o.ends_with("start") && !o.ends_with("stop")),
            "{ops:?}"
        );
        assert_eq!(h.state(0), State::Started);
    }

    #[test]
    fn status_serializes_with_stable_names() {
        let mut h = H::new(vec![group("web", &["fs"])]);
        h.role("vi_web", false);
        h.start();
        // A probe that errs: the member may run, so it is stopped.
        let ops = h.settle(|_, op| match op {
            Op::Probe => AgentResult {
                exit_reason: Some("broken".into()),
                elapsed: Duration::from_millis(12),
                ..AgentResult::code(1)
            },
            _ => AgentResult::code(0),
        });
        assert_eq!(ops, seq("fs probe, fs stop"));
        let v = serde_json::to_value(h.e.status(h.now)).unwrap();
        let m = &v[0]["members"][0];
        assert_eq!(v[0]["name"], "web");
        assert_eq!(v[0]["follows"], "vi_web");
        assert_eq!(m["agent"], "lsb:fs");
        assert_eq!(m["fail_count"], 1);
        assert_eq!(m["last_failure"]["op"], "probe");
        assert_eq!(m["last_failure"]["exit_code"], 1);
        assert_eq!(m["last_failure"]["exit_code_name"], "error");
        assert_eq!(m["last_failure"]["exit_reason"], "broken");
        assert_eq!(m["last_failure"]["duration_ms"], 12);
        assert_eq!(v[0]["state"], "stopped");
        assert!(v[0]["ban"].is_null());
    }
}
