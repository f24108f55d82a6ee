//! The agents shell: runs one agent operation through halb's one process
//! runner ([`halb_process::run`]: its own process group, killed at its
//! deadline, bounded output), the way each class's own cluster manager
//! calls it, and maps the answer onto OCF exit codes for the engine.
//!
//! - **OCF** (as Pacemaker 2.1): `/usr/lib/ocf/resource.d/PROVIDER/TYPE
//!   ACTION` (`start`, `stop`, `monitor`, `meta-data`: the action is the
//!   only argument), everything else in the environment: `OCF_ROOT`,
//!   `OCF_RA_VERSION_MAJOR`/`MINOR`, `OCF_RESOURCE_INSTANCE` (the member's
//!   name), `OCF_RESOURCE_TYPE`, `OCF_RESOURCE_PROVIDER`,
//!   `OCF_RESKEY_<param>`, `OCF_RESKEY_CRM_meta_timeout` and
//!   `OCF_RESKEY_CRM_meta_interval` in milliseconds (interval 0 on a
//!   probe, a start and a stop), `OCF_EXIT_REASON_PREFIX`,
//!   `OCF_CHECK_LEVEL=0`, `HA_RSCTMP`. The exit code is the answer; the
//!   last stderr line starting with `ocf-exit-reason:` is the reason.
//! - **LSB**: `/etc/init.d/NAME start|stop|status`. `status`: 0 running;
//!   1, 2, 3 not running (7); 150 not installed (5); 151 no permission
//!   (4); anything else an error (1). A `stop` that answers 7 (not
//!   running) succeeded.
//! - **heartbeat v1**: `/etc/ha.d/resource.d/NAME ARGS… start|stop|status`
//!   (then `/etc/init.d/NAME`, as heartbeat looks). `status`: the exit
//!   code is ignored; standard output saying "running" or "OK" (and not
//!   "not running") means running, anything else not running.
//!   `start`/`stop`: exit 0 succeeded, anything else is an error (1).
//! - **systemd**: the unit through systemd's D-Bus API, as Pacemaker's
//!   systemd class ([`crate::systemd`]): `StartUnit`/`StopUnit` with mode
//!   `replace` waiting for the job's `JobRemoved`, `ActiveState` for the
//!   monitor. No process is started.
//!
//! As with Pacemaker, an agent that does not exist (or is not a file)
//! answers 5 (not installed), one that is not executable 4 (insufficient
//! privileges); one killed by a signal answers 1 with the signal as its
//! reason; one still running at its timeout is [`AgentStatus::TimedOut`].

use crate::engine::{Action, Op, OpId};
use crate::metadata::{self, MetaData, MetaDataError};
use crate::result::{code, AgentResult, AgentStatus};
use crate::spec::{Agent, MemberSpec};
use halb_process::{Exit, Outcome};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

/// The stderr prefix of an OCF agent's reason line.
pub const EXIT_REASON_PREFIX: &str = "ocf-exit-reason:";

/// `OCF_RA_VERSION_MAJOR`/`MINOR`: Pacemaker 2.1 implements the OCF
/// resource agent API 1.1 and says so to agents.
pub const OCF_VERSION: (&str, &str) = ("1", "1");

/// Bytes of stdout and of stderr kept per call (for `halb resource
/// show`).
pub const CAPTURE: usize = 4096;

/// Where agents are looked up, and what they are given. `Default` is the
/// system's places; tests point them into a temporary directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agents {
    /// `OCF_ROOT`; agents in `OCF_ROOT/resource.d/PROVIDER/TYPE`.
    pub ocf_root: PathBuf,
    /// LSB init scripts.
    pub init_d: PathBuf,
    /// heartbeat v1 scripts, looked up in this order.
    pub heartbeat_dirs: Vec<PathBuf>,
    /// `HA_RSCTMP`, created if missing.
    pub rsctmp: PathBuf,
    /// Bytes of stdout and of stderr kept.
    pub capture: usize,
    /// Where systemd is reached for `systemd:` members.
    pub systemd_bus: crate::systemd::Bus,
}

impl Default for Agents {
    fn default() -> Agents {
        Agents {
            ocf_root: "/usr/lib/ocf".into(),
            init_d: "/etc/init.d".into(),
            heartbeat_dirs: vec!["/etc/ha.d/resource.d".into(), "/etc/init.d".into()],
            rsctmp: "/run/resource-agents".into(),
            capture: CAPTURE,
            systemd_bus: crate::systemd::Bus::default(),
        }
    }
}

/// Runs `op` of `spec` with the system's agents ([`Agents::default`]).
pub async fn run(
    spec: &MemberSpec,
    group: &str,
    op: Op,
    interval: Duration,
    timeout: Duration,
) -> AgentResult {
    Agents::default()
        .run(spec, group, op, interval, timeout)
        .await
}

/// An OCF agent's meta-data, with the system's agents.
pub async fn meta_data(provider: &str, kind: &str) -> Result<MetaData, MetaDataError> {
    Agents::default().meta_data(provider, kind).await
}

impl Agents {
    /// The program that runs `agent` (`None`: systemd, or a heartbeat
    /// script found in none of its directories).
    pub fn program(&self, agent: &Agent) -> Option<PathBuf> {
        match agent {
            Agent::Ocf { provider, kind } => {
                Some(self.ocf_root.join("resource.d").join(provider).join(kind))
            }
            Agent::Lsb(name) => Some(self.init_d.join(name)),
            Agent::Heartbeat { name, .. } => self
                .heartbeat_dirs
                .iter()
                .map(|d| d.join(name))
                .find(|p| p.exists()),
            Agent::Systemd(_) => None,
        }
    }

    /// The environment of an OCF call (Pacemaker 2.1's).
    pub fn ocf_env(
        &self,
        spec: &MemberSpec,
        interval: Duration,
        timeout: Duration,
    ) -> Vec<(String, String)> {
        let (provider, kind) = match &spec.agent {
            Agent::Ocf { provider, kind } => (provider.as_str(), kind.as_str()),
            _ => ("", ""),
        };
        let mut env = self.ocf_base_env(provider, kind);
        env.push(("OCF_RESOURCE_INSTANCE".into(), spec.name.clone()));
        for (k, v) in &spec.params {
            env.push((format!("OCF_RESKEY_{k}"), v.clone()));
        }
        env.push((
            "OCF_RESKEY_CRM_meta_timeout".into(),
            timeout.as_millis().to_string(),
        ));
        env.push((
            "OCF_RESKEY_CRM_meta_interval".into(),
            interval.as_millis().to_string(),
        ));
        env.push(("OCF_CHECK_LEVEL".into(), "0".into()));
        env
    }

    fn ocf_base_env(&self, provider: &str, kind: &str) -> Vec<(String, String)> {
        vec![
            ("OCF_ROOT".into(), self.ocf_root.display().to_string()),
            ("OCF_RA_VERSION_MAJOR".into(), OCF_VERSION.0.into()),
            ("OCF_RA_VERSION_MINOR".into(), OCF_VERSION.1.into()),
            ("OCF_RESOURCE_TYPE".into(), kind.into()),
            ("OCF_RESOURCE_PROVIDER".into(), provider.into()),
            ("OCF_EXIT_REASON_PREFIX".into(), EXIT_REASON_PREFIX.into()),
            ("HA_RSCTMP".into(), self.rsctmp.display().to_string()),
        ]
    }

    /// Runs `op` of `spec` (a member of `group`), `interval` being the
    /// monitor interval (zero for a probe), killed at `timeout`.
    pub async fn run(
        &self,
        spec: &MemberSpec,
        group: &str,
        op: Op,
        interval: Duration,
        timeout: Duration,
    ) -> AgentResult {
        if let Agent::Systemd(unit) = &spec.agent {
            return crate::systemd::run(&self.systemd_bus, &unit_name(unit), op, timeout).await;
        }
        let Some(program) = self.program(&spec.agent) else {
            return not_installed(&format!(
                "{group}/{}: {} is in none of {}",
                spec.name,
                spec.agent,
                self.heartbeat_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        // As Pacemaker stat()s the agent first: missing or a directory is
        // "not installed", not executable "insufficient privileges".
        let what = format!("{group}/{}: {}", spec.name, program.display());
        match tokio::fs::metadata(&program).await {
            Err(_) => return not_installed(&format!("{what} does not exist")),
            Ok(md) if !md.is_file() => return not_installed(&format!("{what} is not a file")),
            Ok(md) if md.permissions().mode() & 0o111 == 0 => {
                return AgentResult {
                    exit_reason: Some(format!("{what} is not executable")),
                    ..AgentResult::code(code::ERR_PERM)
                }
            }
            Ok(_) => {}
        }
        let status_word = |lsb: &'static str| match op {
            Op::Probe | Op::Monitor => lsb,
            Op::Start => "start",
            Op::Stop => "stop",
        };
        let (args, env) = match &spec.agent {
            Agent::Ocf { .. } => {
                // The agents keep their state there; Pacemaker's packaging
                // creates it at boot.
                let _ = tokio::fs::create_dir_all(&self.rsctmp).await;
                let interval = if op == Op::Monitor {
                    interval
                } else {
                    Duration::ZERO
                };
                (
                    vec![status_word("monitor").to_owned()],
                    self.ocf_env(spec, interval, timeout),
                )
            }
            Agent::Lsb(_) => (vec![status_word("status").to_owned()], Vec::new()),
            Agent::Heartbeat { args, .. } => {
                let mut a = args.clone();
                a.push(status_word("status").to_owned());
                (a, Vec::new())
            }
            // Run over D-Bus above.
            Agent::Systemd(_) => return AgentResult::error("systemd units run over D-Bus"),
        };
        let outcome = halb_process::run(&halb_process::Spec {
            program,
            args,
            env,
            timeout: Some(timeout),
            capture: self.capture,
            outlive: false,
        })
        .await;
        interpret(&spec.agent, op, &outcome)
    }

    /// The agent call an [`Action::Run`] asks for, as a future the shell
    /// spawns (`None` for any other action): it resolves to the id and the
    /// result to give [`crate::Engine::handle_result`].
    ///
    /// ```text
    /// if let Some(call) = agents.call(&action) { calls.spawn(call); }   // a JoinSet
    /// …
    /// Some(Ok((id, result))) = calls.join_next() => engine.handle_result(id, result, Instant::now()),
    /// ```
    pub fn call(
        &self,
        action: &Action,
    ) -> Option<impl std::future::Future<Output = (OpId, AgentResult)> + Send + 'static> {
        let Action::Run {
            id,
            group,
            op,
            timeout,
            interval,
            spec,
            ..
        } = action
        else {
            return None;
        };
        let (agents, id, group, op, timeout, interval, spec) = (
            self.clone(),
            *id,
            group.clone(),
            *op,
            *timeout,
            *interval,
            spec.clone(),
        );
        Some(async move {
            let r = agents.run(&spec, &group, op, interval, timeout).await;
            (id, r)
        })
    }

    /// Runs `TYPE meta-data` of an OCF agent and parses it.
    pub async fn meta_data(&self, provider: &str, kind: &str) -> Result<MetaData, MetaDataError> {
        let program = self.ocf_root.join("resource.d").join(provider).join(kind);
        let o = halb_process::run(&halb_process::Spec {
            program: program.clone(),
            args: vec!["meta-data".into()],
            env: self.ocf_base_env(provider, kind),
            timeout: Some(Duration::from_secs(10)),
            capture: 1 << 20,
            outlive: false,
        })
        .await;
        if !o.success() {
            return Err(MetaDataError(format!(
                "{} meta-data: {}{}",
                program.display(),
                o.exit,
                o.first_line().map(|l| format!(": {l}")).unwrap_or_default()
            )));
        }
        metadata::parse(&String::from_utf8_lossy(&o.stdout))
    }
}

/// A unit name as systemctl reads it: without a suffix, a `.service`.
pub fn unit_name(unit: &str) -> String {
    const SUFFIXES: &[&str] = &[
        "service",
        "socket",
        "device",
        "mount",
        "automount",
        "swap",
        "target",
        "path",
        "timer",
        "slice",
        "scope",
    ];
    match unit.rsplit_once('.') {
        Some((_, s)) if SUFFIXES.contains(&s) => unit.to_owned(),
        _ => format!("{unit}.service"),
    }
}

fn not_installed(why: &str) -> AgentResult {
    AgentResult {
        exit_reason: Some(why.to_owned()),
        ..AgentResult::code(code::ERR_INSTALLED)
    }
}

/// The last `ocf-exit-reason:` line of `stderr`, without the prefix.
pub fn exit_reason(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .rev()
        .filter_map(|l| l.trim_start().strip_prefix(EXIT_REASON_PREFIX))
        .map(|r| r.trim().to_owned())
        .find(|r| !r.is_empty())
}

/// heartbeat v1's reading of a `status` answer: running when standard
/// output says "running" or "OK", unless it says "not running".
pub fn heartbeat_running(stdout: &str) -> bool {
    let lower = stdout.to_ascii_lowercase();
    !lower.contains("not running") && (lower.contains("running") || stdout.contains("OK"))
}

/// An LSB `status` code as an OCF code.
pub fn lsb_status(c: i32) -> i32 {
    match c {
        0 => code::OK,
        1..=3 => code::NOT_RUNNING,
        150 => code::ERR_INSTALLED,
        151 => code::ERR_PERM,
        _ => code::ERR_GENERIC,
    }
}

/// What an agent's exit means, by class and operation.
pub fn interpret(agent: &Agent, op: Op, o: &Outcome) -> AgentResult {
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let monitor = matches!(op, Op::Probe | Op::Monitor);
    let mut reason = None;
    let status = match &o.exit {
        Exit::Code(c) => {
            let c = *c;
            AgentStatus::Code(match agent {
                Agent::Ocf { .. } => c,
                Agent::Lsb(_) if monitor => lsb_status(c),
                Agent::Lsb(_) if op == Op::Stop && c == code::NOT_RUNNING => code::OK,
                Agent::Lsb(_) if (0..=7).contains(&c) => c,
                Agent::Lsb(_) => code::ERR_GENERIC,
                Agent::Heartbeat { .. } if monitor => {
                    if heartbeat_running(&stdout) {
                        code::OK
                    } else {
                        code::NOT_RUNNING
                    }
                }
                Agent::Heartbeat { .. } if c == 0 => code::OK,
                Agent::Heartbeat { .. } => code::ERR_GENERIC,
                Agent::Systemd(_) => code::ERR_UNIMPLEMENTED,
            })
        }
        Exit::Signal(s) => {
            reason = Some(format!("killed by signal {s}"));
            AgentStatus::Code(code::ERR_GENERIC)
        }
        Exit::TimedOut(t) => AgentStatus::TimedOut(*t),
        Exit::Spawn(e) | Exit::Wait(e) => {
            reason = Some(e.clone());
            AgentStatus::Error(e.clone())
        }
    };
    let failed = !matches!(
        status,
        AgentStatus::Code(code::OK | code::RUNNING_PROMOTED | code::NOT_RUNNING)
    );
    let reason = exit_reason(&stderr).or(reason).or_else(|| {
        (failed && !matches!(agent, Agent::Ocf { .. }))
            .then(|| o.first_line())
            .flatten()
    });
    AgentResult {
        status,
        exit_reason: reason,
        stdout,
        stderr,
        elapsed: o.elapsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(exit: Exit, stdout: &str, stderr: &str) -> Outcome {
        Outcome {
            exit,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            elapsed: Duration::from_millis(3),
        }
    }

    #[test]
    fn ocf_codes_and_reasons() {
        let ocf = Agent::parse("ocf:heartbeat:Dummy").unwrap();
        let r = interpret(
            &ocf,
            Op::Start,
            &outcome(
                Exit::Code(5),
                "",
                "INFO: x\nocf-exit-reason:first\nocf-exit-reason: mkfs.ext4 not found\n",
            ),
        );
        assert_eq!(r.status, AgentStatus::Code(5));
        assert_eq!(r.exit_reason.as_deref(), Some("mkfs.ext4 not found"));
        let r = interpret(&ocf, Op::Monitor, &outcome(Exit::Code(7), "", ""));
        assert!(r.not_running());
        assert_eq!(r.exit_reason, None);
        let r = interpret(&ocf, Op::Stop, &outcome(Exit::Signal(9), "", ""));
        assert_eq!(r.status, AgentStatus::Code(1));
        assert_eq!(r.exit_reason.as_deref(), Some("killed by signal 9"));
        let r = interpret(
            &ocf,
            Op::Stop,
            &outcome(Exit::TimedOut(Duration::from_secs(20)), "", ""),
        );
        assert_eq!(r.status, AgentStatus::TimedOut(Duration::from_secs(20)));
    }

    #[test]
    fn lsb_status_codes() {
        let lsb = Agent::parse("lsb:memcached").unwrap();
        for (c, want) in [(0, 0), (1, 7), (2, 7), (3, 7), (4, 1), (150, 5), (151, 4)] {
            let r = interpret(&lsb, Op::Probe, &outcome(Exit::Code(c), "", ""));
            assert_eq!(r.status, AgentStatus::Code(want), "status {c}");
        }
        let r = interpret(&lsb, Op::Stop, &outcome(Exit::Code(7), "", ""));
        assert!(r.ok(), "stopping a stopped service succeeded");
        let r = interpret(&lsb, Op::Start, &outcome(Exit::Code(1), "", "no config\n"));
        assert_eq!(r.status, AgentStatus::Code(1));
        assert_eq!(r.exit_reason.as_deref(), Some("no config"));
    }

    #[test]
    fn heartbeat_status_is_read_from_stdout() {
        let hb = Agent::parse("heartbeat:IPaddr2::192.0.2.1/24").unwrap();
        for (out, running) in [
            ("running\n", true),
            ("OK\n", true),
            ("192.0.2.1 is running\n", true),
            ("not running\n", false),
            ("stopped\n", false),
            ("", false),
            ("ok\n", false),
        ] {
            // The exit code is ignored for status.
            for c in [0, 1, 3] {
                let r = interpret(&hb, Op::Monitor, &outcome(Exit::Code(c), out, ""));
                assert_eq!(r.running(), running, "{out:?} exit {c}");
            }
        }
        let r = interpret(&hb, Op::Start, &outcome(Exit::Code(2), "", ""));
        assert_eq!(r.status, AgentStatus::Code(1));
    }

    #[test]
    fn ocf_environment_is_pacemakers() {
        let mut m = MemberSpec::new("fs", Agent::parse("ocf:heartbeat:Filesystem").unwrap());
        m.params = vec![("device".into(), "/dev/sdb1".into())];
        let env = Agents::default().ocf_env(&m, Duration::ZERO, Duration::from_secs(20));
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("OCF_ROOT"), Some("/usr/lib/ocf"));
        assert_eq!(get("OCF_RA_VERSION_MAJOR"), Some("1"));
        assert_eq!(get("OCF_RESOURCE_INSTANCE"), Some("fs"));
        assert_eq!(get("OCF_RESOURCE_TYPE"), Some("Filesystem"));
        assert_eq!(get("OCF_RESOURCE_PROVIDER"), Some("heartbeat"));
        assert_eq!(get("OCF_RESKEY_device"), Some("/dev/sdb1"));
        assert_eq!(get("OCF_RESKEY_CRM_meta_timeout"), Some("20000"));
        assert_eq!(get("OCF_RESKEY_CRM_meta_interval"), Some("0"));
        assert_eq!(get("OCF_EXIT_REASON_PREFIX"), Some("ocf-exit-reason:"));
        assert_eq!(get("OCF_CHECK_LEVEL"), Some("0"));
        assert_eq!(get("HA_RSCTMP"), Some("/run/resource-agents"));
    }

    #[tokio::test]
    async fn systemd_and_missing_agents() {
        let m = MemberSpec::new("web", Agent::parse("systemd:nginx").unwrap());
        let agents = Agents {
            systemd_bus: crate::systemd::Bus::Address("unix:path=/nonexistent/hrs/bus".into()),
            ..Agents::default()
        };
        let r = agents
            .run(&m, "g", Op::Start, Duration::ZERO, Duration::from_secs(1))
            .await;
        assert!(matches!(r.status, AgentStatus::Error(_)), "{r:?}");
        assert!(
            r.exit_reason.unwrap().contains("systemd:nginx.service"),
            "the unit is named as systemctl reads it"
        );
        let m = MemberSpec::new("x", Agent::parse("ocf:nonexistent:Nothing").unwrap());
        let r = run(&m, "g", Op::Probe, Duration::ZERO, Duration::from_secs(1)).await;
        assert_eq!(r.status, AgentStatus::Code(5));
        assert!(r.exit_reason.unwrap().contains("does not exist"));
    }
}
