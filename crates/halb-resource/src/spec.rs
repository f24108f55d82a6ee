//! What a resource group is: plain data, no I/O. halb-config builds these
//! from `[[resource_group]]`; the engine and the agents shell read them.

use std::fmt;
use std::time::Duration;

/// Pacemaker's default operation timeout (start, stop, monitor).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The monitor interval when none is given (Pacemaker's usual 10 s).
pub const DEFAULT_MONITOR_INTERVAL: Duration = Duration::from_secs(10);

/// One ordered group of members that runs where the followed VRRP
/// instance (or sync group) is master, and nowhere else.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GroupSpec {
    pub name: String,
    pub follows: Follows,
    /// Started in this order, stopped in reverse.
    pub members: Vec<MemberSpec>,
    /// A member's fail count that bans the group from this director; 0:
    /// never.
    pub migration_threshold: u32,
    /// Fail counts (and the ban they cause) expire this long after a
    /// member's last failure; `None`: only `cleanup` clears them.
    pub failure_timeout: Option<Duration>,
    /// A failed start bans the group from this director at once
    /// (Pacemaker's default, true).
    pub start_failure_is_fatal: bool,
    /// `false` (`is-managed=false`): no monitors, nothing started or
    /// stopped.
    pub managed: bool,
}

impl GroupSpec {
    /// A group with Pacemaker's defaults: no migration threshold, no
    /// failure timeout, start failures fatal, managed.
    pub fn new(name: impl Into<String>, follows: Follows, members: Vec<MemberSpec>) -> GroupSpec {
        GroupSpec {
            name: name.into(),
            follows,
            members,
            migration_threshold: 0,
            failure_timeout: None,
            start_failure_is_fatal: true,
            managed: true,
        }
    }
}

/// What a group follows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Follows {
    /// A `vrrp_instance` by name.
    Instance(String),
    /// A `vrrp_sync_group` by name.
    SyncGroup(String),
}

impl Follows {
    /// The followed instance's or sync group's name.
    pub fn name(&self) -> &str {
        match self {
            Follows::Instance(n) | Follows::SyncGroup(n) => n,
        }
    }
}

/// One member of a group: one agent with its parameters and operations.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemberSpec {
    pub name: String,
    pub agent: Agent,
    /// `OCF_RESKEY_<name>=<value>` for OCF agents; ignored by the others
    /// (heartbeat v1 takes its arguments in [`Agent::Heartbeat`]).
    pub params: Vec<(String, String)>,
    pub monitor: OpSpec,
    pub start_timeout: Duration,
    pub stop_timeout: Duration,
    /// What a failed monitor does.
    pub on_fail: OnFail,
    /// What a failed start does (`start_on_fail`); `None`: the group's
    /// `start_failure_is_fatal` decides ([`OnFail::Move`] when set, the
    /// default, else [`OnFail::Restart`]). A failed probe restarts; a
    /// failed stop always blocks (data safety: nothing may start
    /// elsewhere while it may still run here).
    pub start_on_fail: Option<OnFail>,
}

impl MemberSpec {
    /// A member with Pacemaker's defaults: 20 s timeouts, a monitor
    /// every 10 s, `on_fail = restart`.
    pub fn new(name: impl Into<String>, agent: Agent) -> MemberSpec {
        MemberSpec {
            name: name.into(),
            agent,
            params: Vec::new(),
            monitor: OpSpec::default(),
            start_timeout: DEFAULT_TIMEOUT,
            stop_timeout: DEFAULT_TIMEOUT,
            on_fail: OnFail::default(),
            start_on_fail: None,
        }
    }
}

/// A recurring operation (the monitor): its interval (zero: no recurring
/// monitor) and timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OpSpec {
    pub interval: Duration,
    pub timeout: Duration,
}

impl Default for OpSpec {
    fn default() -> OpSpec {
        OpSpec {
            interval: DEFAULT_MONITOR_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// What a failed monitor does (Pacemaker's `on-fail`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum OnFail {
    /// Stop the member and every later one (in reverse), start them again
    /// in order.
    #[default]
    Restart,
    /// Stop the member and every later one, and leave them stopped until
    /// `cleanup`.
    Stop,
    /// Block the group: nothing more is started or stopped on this
    /// director until `cleanup`.
    Block,
    /// Pretend it did not fail (recorded, not counted).
    Ignore,
    /// The director gives up the group (and, in the integration, all it
    /// holds) until `cleanup`.
    Standby,
    /// Move the group away: it is banned here until `failure_timeout`
    /// after the failure (or `cleanup`), and the peer takes it. A failed
    /// start's default (`start_failure_is_fatal`).
    Move,
}

impl OnFail {
    pub const ALL: [OnFail; 6] = [
        OnFail::Restart,
        OnFail::Stop,
        OnFail::Block,
        OnFail::Ignore,
        OnFail::Standby,
        OnFail::Move,
    ];

    /// What a failed start may do (`ignore` makes no sense there: the
    /// member did not start).
    pub const START: [OnFail; 5] = [
        OnFail::Move,
        OnFail::Restart,
        OnFail::Stop,
        OnFail::Block,
        OnFail::Standby,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OnFail::Restart => "restart",
            OnFail::Stop => "stop",
            OnFail::Block => "block",
            OnFail::Ignore => "ignore",
            OnFail::Standby => "standby",
            OnFail::Move => "move",
        }
    }

    /// `"restart"` … `"standby"`.
    pub fn parse(s: &str) -> Option<OnFail> {
        OnFail::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

impl fmt::Display for OnFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which agent runs a member, and how it is found.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Agent {
    /// `ocf:PROVIDER:TYPE`: `/usr/lib/ocf/resource.d/PROVIDER/TYPE`.
    Ocf { provider: String, kind: String },
    /// `lsb:NAME`: `/etc/init.d/NAME`.
    Lsb(String),
    /// `heartbeat:NAME::ARG1::ARG2`: heartbeat v1's
    /// `/etc/ha.d/resource.d/NAME ARG1 ARG2 start|stop|status`.
    Heartbeat { name: String, args: Vec<String> },
    /// `systemd:UNIT`.
    Systemd(String),
}

/// Why an agent string is not one, and how to write it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentError {
    /// The string as given.
    pub input: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "agent {:?}: {}; {}", self.input, self.problem, self.fix)
    }
}

impl std::error::Error for AgentError {}

const AGENT_FORMS: &str = "write \"ocf:PROVIDER:TYPE\" (e.g. \"ocf:heartbeat:Filesystem\"), \
     \"lsb:NAME\" (e.g. \"lsb:memcached\"), \"heartbeat:NAME::ARG::ARG\" (e.g. \
     \"heartbeat:IPaddr2::192.0.2.100/24\") or \"systemd:UNIT\" (e.g. \"systemd:nginx.service\")";

/// A name that becomes one path component: not empty, no `/`, no
/// whitespace or control characters, not `.` or `..`.
fn component(input: &str, what: &str, value: &str) -> Result<(), AgentError> {
    let err = |problem: String, fix: &str| AgentError {
        input: input.to_owned(),
        problem,
        fix: fix.to_owned(),
    };
    if value.is_empty() {
        return Err(err(format!("the {what} is empty"), AGENT_FORMS));
    }
    if value == "." || value == ".." || value.contains('/') {
        return Err(err(
            format!("the {what} {value:?} is a path, not a name"),
            "give the name only: halb looks the agent up in its class's directory",
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err(
            format!("the {what} {value:?} contains a space or a control character"),
            "agent names have no spaces",
        ));
    }
    Ok(())
}

impl Agent {
    /// `ocf:heartbeat:Filesystem`, `lsb:memcached`,
    /// `heartbeat:IPaddr2::192.0.2.100/24`, `systemd:nginx.service`.
    pub fn parse(s: &str) -> Result<Agent, AgentError> {
        let err = |problem: String, fix: &str| AgentError {
            input: s.to_owned(),
            problem,
            fix: fix.to_owned(),
        };
        let Some((class, rest)) = s.split_once(':') else {
            return Err(err(
                "there is no class (ocf:, lsb:, heartbeat: or systemd:)".into(),
                AGENT_FORMS,
            ));
        };
        match class {
            "ocf" => {
                let mut parts = rest.split(':');
                let (Some(provider), Some(kind), None) = (parts.next(), parts.next(), parts.next())
                else {
                    return Err(err(
                        "an OCF agent has a provider and a type".into(),
                        "write \"ocf:PROVIDER:TYPE\", e.g. \"ocf:heartbeat:IPaddr2\" \
                         (/usr/lib/ocf/resource.d/heartbeat/IPaddr2)",
                    ));
                };
                component(s, "provider", provider)?;
                component(s, "type", kind)?;
                Ok(Agent::Ocf {
                    provider: provider.to_owned(),
                    kind: kind.to_owned(),
                })
            }
            "lsb" => {
                component(s, "init script name", rest)?;
                Ok(Agent::Lsb(rest.to_owned()))
            }
            "heartbeat" => {
                let mut parts = rest.split("::");
                let name = parts.next().unwrap_or_default();
                component(s, "heartbeat script name", name)?;
                let args: Vec<String> = parts.map(str::to_owned).collect();
                if args.iter().any(String::is_empty) {
                    return Err(err(
                        "an argument is empty".into(),
                        "separate the arguments with \"::\", as in haresources: \
                         \"heartbeat:Filesystem::/dev/drbd0::/mnt::ext3\"",
                    ));
                }
                Ok(Agent::Heartbeat {
                    name: name.to_owned(),
                    args,
                })
            }
            "systemd" => {
                component(s, "unit", rest)?;
                Ok(Agent::Systemd(rest.to_owned()))
            }
            other => Err(err(format!("unknown class {other:?}"), AGENT_FORMS)),
        }
    }

    /// `ocf`, `lsb`, `heartbeat` or `systemd`.
    pub fn class(&self) -> &'static str {
        match self {
            Agent::Ocf { .. } => "ocf",
            Agent::Lsb(_) => "lsb",
            Agent::Heartbeat { .. } => "heartbeat",
            Agent::Systemd(_) => "systemd",
        }
    }
}

/// The form [`Agent::parse`] reads.
impl fmt::Display for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Agent::Ocf { provider, kind } => write!(f, "ocf:{provider}:{kind}"),
            Agent::Lsb(n) => write!(f, "lsb:{n}"),
            Agent::Heartbeat { name, args } => {
                write!(f, "heartbeat:{name}")?;
                for a in args {
                    write!(f, "::{a}")?;
                }
                Ok(())
            }
            Agent::Systemd(u) => write!(f, "systemd:{u}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_parse_and_print_back() {
        for s in [
            "ocf:heartbeat:Filesystem",
            "lsb:memcached",
            "heartbeat:IPaddr2::192.0.2.100/24",
            "heartbeat:Filesystem::/dev/drbd0::/mnt/repl::ext3",
            "heartbeat:apache",
            "systemd:nginx.service",
        ] {
            let a = Agent::parse(s).unwrap();
            assert_eq!(a.to_string(), s);
        }
        assert_eq!(
            Agent::parse("heartbeat:IPaddr2::192.0.2.100/24").unwrap(),
            Agent::Heartbeat {
                name: "IPaddr2".into(),
                args: vec!["192.0.2.100/24".into()]
            }
        );
        assert_eq!(
            Agent::parse("ocf:heartbeat:Dummy").unwrap(),
            Agent::Ocf {
                provider: "heartbeat".into(),
                kind: "Dummy".into()
            }
        );
    }

    #[test]
    fn bad_agents_say_what_and_how() {
        for (s, problem) in [
            ("Filesystem", "no class"),
            ("ocf:Filesystem", "provider and a type"),
            ("ocf:heartbeat:Filesystem:x", "provider and a type"),
            ("ocf::Filesystem", "provider is empty"),
            ("ocf:heartbeat:../../bin/sh", "a path"),
            ("lsb:", "is empty"),
            ("lsb:/etc/init.d/memcached", "a path"),
            ("heartbeat:IPaddr2::::x", "argument is empty"),
            ("upstart:foo", "unknown class"),
            ("systemd:my unit", "space"),
        ] {
            let e = Agent::parse(s).unwrap_err();
            assert!(e.problem.contains(problem), "{s}: {e}");
            assert!(!e.fix.is_empty());
            assert!(e.to_string().contains(s), "{e}");
        }
    }

    #[test]
    fn defaults_are_pacemakers() {
        let m = MemberSpec::new("fs", Agent::Lsb("x".into()));
        assert_eq!(m.start_timeout, Duration::from_secs(20));
        assert_eq!(m.stop_timeout, Duration::from_secs(20));
        assert_eq!(m.monitor.timeout, Duration::from_secs(20));
        assert_eq!(m.monitor.interval, Duration::from_secs(10));
        assert_eq!(m.on_fail, OnFail::Restart);
        let g = GroupSpec::new("g", Follows::Instance("vi".into()), vec![m]);
        assert!(g.start_failure_is_fatal && g.managed);
        assert_eq!(g.migration_threshold, 0);
        for o in OnFail::ALL {
            assert_eq!(OnFail::parse(o.as_str()), Some(o));
        }
    }
}
