//! Resource groups that follow a director's role (issue 17): the ordered
//! members (a filesystem, a web server, a database) that run where the
//! followed VRRP instance is master, started in order, stopped in
//! reverse, monitored, restarted, and given up to the peer, with the
//! agents users already have (OCF, LSB init scripts, heartbeat v1
//! `resource.d` scripts).
//!
//! - [`spec`]: what a group is ([`GroupSpec`], [`MemberSpec`], [`Agent`],
//!   [`OnFail`]): plain data that halb-config builds.
//! - [`engine`]: the sans-IO [`Engine`]: inputs with `now`, [`Action`]s
//!   out, its next deadline. No I/O, no clock.
//! - [`result`]: what an agent call returned ([`AgentResult`]), OCF exit
//!   codes with Pacemaker's names and classes.
//! - [`metadata`]: an OCF agent's `meta-data` XML, parsed (pure).
//! - [`agent`] (default feature `agents`): the shell that runs agents
//!   through `halb_process::run`, exactly as Pacemaker 2.1 calls them.
//!
//! With `default-features = false` the crate is the sans-IO part only
//! (no tokio), which is what halb-config and halb-director take.
//!
//! # Driving it (what the daemon's integration does)
//!
//! ```text
//! let mut engine = Engine::new(config.resource_groups.clone());
//! engine.handle_start(now);                       // probes every member here
//! // VRRP: an instance became master / left master
//! engine.handle_role(&instance, state == Master, now);
//! loop {
//!     while let Some(a) = engine.poll_action() {
//!         match a {
//!             Action::Run { .. } => calls.spawn(agents.call(&a)?),   // a JoinSet;
//!                 // its (id, result) goes to engine.handle_result(id, result, Instant::now())
//!             Action::Event(e) => { /* log `e`, alert, status */ }
//!             Action::GroupReleased { group } => { /* VRRP may drop the VIPs */ }
//!             Action::GiveUp { group, until, .. } => { /* fault the followed instance */ }
//!             Action::BanLifted { group } => { /* clear that fault */ }
//!         }
//!     }
//!     sleep until engine.poll_timeout() (or a result, a role change, a command),
//!     then engine.handle_timeout(now)
//! }
//! // halb list: engine.status(now) (serde, stable snake_case fields)
// halb resource show: engine.history(group, member, now) (the last operations, with output)
//! // halb resource cleanup/restart, halb maintenance: engine.handle_command(cmd, now)
// halb reload: engine.handle_groups(new_groups, now) (the change lines), then
//              handle_role again for every followed instance
//! ```
//!
//! `tests/agents.rs` holds such a loop, driving Debian's real agents.

#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

#[cfg(feature = "agents")]
pub mod agent;
pub mod engine;
pub mod metadata;
pub mod result;
pub mod spec;
#[cfg(feature = "agents")]
pub mod systemd;

pub use engine::{
    Action, BanStatus, Command, CommandError, Engine, EventKind, FailureStatus, GiveUpReason,
    GroupStatus, MemberStatus, Op, OpId, OpRecord, ResourceEvent, State, HISTORY, OP_GRACE,
};
pub use metadata::{MetaData, MetaDataError, Parameter};
pub use result::{code_name, severity, AgentResult, AgentStatus, Severity};
pub use spec::{
    Agent, AgentError, Follows, GroupSpec, MemberSpec, OnFail, OpSpec, DEFAULT_MONITOR_INTERVAL,
    DEFAULT_TIMEOUT,
};
