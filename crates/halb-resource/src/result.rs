//! What an agent call returned, in OCF's terms: the shell maps LSB and
//! heartbeat v1 answers onto OCF exit codes, so the engine reads one
//! vocabulary.

use std::time::Duration;

/// The OCF exit codes (Pacemaker's `PCMK_OCF_*`).
pub mod code {
    pub const OK: i32 = 0;
    pub const ERR_GENERIC: i32 = 1;
    pub const ERR_ARGS: i32 = 2;
    pub const ERR_UNIMPLEMENTED: i32 = 3;
    pub const ERR_PERM: i32 = 4;
    pub const ERR_INSTALLED: i32 = 5;
    pub const ERR_CONFIGURED: i32 = 6;
    pub const NOT_RUNNING: i32 = 7;
    pub const RUNNING_PROMOTED: i32 = 8;
    pub const FAILED_PROMOTED: i32 = 9;
    pub const DEGRADED: i32 = 190;
    pub const DEGRADED_PROMOTED: i32 = 191;
}

/// Pacemaker 2.1's name of an OCF exit code (`services_ocf_exitcode_str`).
pub fn code_name(c: i32) -> &'static str {
    match c {
        code::OK => "ok",
        code::ERR_GENERIC => "error",
        code::ERR_ARGS => "invalid parameter",
        code::ERR_UNIMPLEMENTED => "unimplemented feature",
        code::ERR_PERM => "insufficient privileges",
        code::ERR_INSTALLED => "not installed",
        code::ERR_CONFIGURED => "not configured",
        code::NOT_RUNNING => "not running",
        code::RUNNING_PROMOTED => "promoted",
        code::FAILED_PROMOTED => "promoted (failed)",
        code::DEGRADED => "OCF_DEGRADED",
        code::DEGRADED_PROMOTED => "OCF_DEGRADED_PROMOTED",
        _ => "unknown",
    }
}

/// How bad a failure is (the OCF spec's classes, as Pacemaker applies
/// them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Recoverable here: `on_fail` applies (1, 7, 9, a timeout).
    Soft,
    /// Cannot run on this director (2, 3, 4, 5, the agent not run at
    /// all): the group is banned here at once.
    Hard,
    /// Cannot run anywhere (6, not configured): banned here too; the peer
    /// will find the same.
    Fatal,
}

/// The class of a failing OCF exit code.
pub fn severity(c: i32) -> Severity {
    match c {
        code::ERR_ARGS | code::ERR_UNIMPLEMENTED | code::ERR_PERM | code::ERR_INSTALLED => {
            Severity::Hard
        }
        code::ERR_CONFIGURED => Severity::Fatal,
        _ => Severity::Soft,
    }
}

/// How the call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentStatus {
    /// The agent's exit code, as an OCF code (LSB status codes and
    /// heartbeat v1's standard output are mapped by the shell).
    Code(i32),
    /// Still running at its deadline: killed with its process group.
    TimedOut(Duration),
    /// Not run, or no answer that means anything (an unsupported class):
    /// a hard error.
    Error(String),
}

/// What one agent call returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentResult {
    pub status: AgentStatus,
    /// The agent's `ocf-exit-reason:` line (without the prefix), or the
    /// shell's own reason (killed by a signal, not found).
    pub exit_reason: Option<String>,
    /// Bounded captured output, for `halb resource show`.
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl AgentResult {
    /// A result with this exit code and nothing else (tests, simple
    /// shells).
    pub fn code(c: i32) -> AgentResult {
        AgentResult::with_status(AgentStatus::Code(c))
    }

    pub fn timed_out(after: Duration) -> AgentResult {
        AgentResult {
            elapsed: after,
            ..AgentResult::with_status(AgentStatus::TimedOut(after))
        }
    }

    pub fn error(why: impl Into<String>) -> AgentResult {
        let why = why.into();
        AgentResult {
            exit_reason: Some(why.clone()),
            ..AgentResult::with_status(AgentStatus::Error(why))
        }
    }

    pub fn with_status(status: AgentStatus) -> AgentResult {
        AgentResult {
            status,
            exit_reason: None,
            stdout: String::new(),
            stderr: String::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// The exit code, if there is one.
    pub fn exit_code(&self) -> Option<i32> {
        match self.status {
            AgentStatus::Code(c) => Some(c),
            _ => None,
        }
    }

    /// "not running", "timed out", "error".
    pub fn code_name(&self) -> &'static str {
        match self.status {
            AgentStatus::Code(c) => code_name(c),
            AgentStatus::TimedOut(_) => "timed out",
            AgentStatus::Error(_) => "error",
        }
    }

    /// Exit 0.
    pub fn ok(&self) -> bool {
        self.status == AgentStatus::Code(code::OK)
    }

    /// A monitor's answer: the resource runs (0, 8, 190, 191).
    pub fn running(&self) -> bool {
        matches!(
            self.status,
            AgentStatus::Code(
                code::OK | code::RUNNING_PROMOTED | code::DEGRADED | code::DEGRADED_PROMOTED
            )
        )
    }

    /// A monitor's answer: cleanly not running (7).
    pub fn not_running(&self) -> bool {
        self.status == AgentStatus::Code(code::NOT_RUNNING)
    }

    /// The class of this result as a failure.
    pub fn severity(&self) -> Severity {
        match self.status {
            AgentStatus::Code(c) => severity(c),
            AgentStatus::TimedOut(_) => Severity::Soft,
            AgentStatus::Error(_) => Severity::Hard,
        }
    }

    /// One line for the log: "exit 7 (not running): reason".
    pub fn describe(&self) -> String {
        let mut s = match &self.status {
            AgentStatus::Code(c) => format!("exit {c} ({})", code_name(*c)),
            AgentStatus::TimedOut(t) => format!("timed out after {t:?}"),
            AgentStatus::Error(e) => format!("error: {e}"),
        };
        if let Some(r) = &self.exit_reason {
            if !matches!(&self.status, AgentStatus::Error(e) if e == r) {
                s.push_str(": ");
                s.push_str(r);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_pacemakers_names_and_classes() {
        assert_eq!(code_name(7), "not running");
        assert_eq!(code_name(8), "promoted");
        assert_eq!(code_name(5), "not installed");
        assert_eq!(code_name(190), "OCF_DEGRADED");
        assert_eq!(code_name(42), "unknown");
        assert_eq!(severity(1), Severity::Soft);
        assert_eq!(severity(7), Severity::Soft);
        for c in 2..=5 {
            assert_eq!(severity(c), Severity::Hard);
        }
        assert_eq!(severity(6), Severity::Fatal);
        assert!(AgentResult::code(8).running());
        assert!(AgentResult::code(191).running());
        assert!(!AgentResult::code(9).running());
        assert!(AgentResult::code(7).not_running());
        assert_eq!(
            AgentResult::error("systemd agents not supported yet").severity(),
            Severity::Hard
        );
        let mut r = AgentResult::code(1);
        r.exit_reason = Some("disk full".into());
        assert_eq!(r.describe(), "exit 1 (error): disk full");
        assert_eq!(
            AgentResult::error("nope").describe(),
            "error: nope",
            "the reason is not said twice"
        );
    }
}
