//! External command (ldirectord `external`, keepalived MISC_CHECK).
//!
//! Run as `PROGRAM ARGS... VIP VPORT RIP RPORT`, as ldirectord does, with
//! the same values in `HALB_VIP`, `HALB_VPORT`, `HALB_RIP`, `HALB_RPORT`.
//!
//! Exit 0: up. Exit 1: down. Exit 2..=255: up with weight `code - 2` when
//! the check is dynamic, down otherwise. Killed by a signal: down. The
//! command runs in its own process group with no stdin/stdout/stderr
//! pipes; if the probe is dropped (its timeout expired) the whole group
//! gets SIGKILL, so a script's own children (`sleep`, `curl`) die too.

use crate::engine::ProbeOutcome;
use crate::spec::ExternalSpec;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt as _;
use std::process::Stdio;
use tokio::process::Command;

/// Kills the process group on drop unless disarmed (after the leader has
/// been reaped, the group id could be reused).
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// Runs the command. No timeout of its own: the caller ([`super::run`])
/// bounds it, and dropping this future kills the process group.
pub async fn probe(target: std::net::SocketAddr, spec: &ExternalSpec) -> ProbeOutcome {
    let mut command = std::process::Command::new(&spec.program);
    command.args(&spec.args);
    // ldirectord's order: VIP VPORT RIP RPORT.
    if let (Some(vs), true) = (spec.service, spec.pass_addresses) {
        command
            .arg(vs.ip().to_string())
            .arg(vs.port().to_string())
            .env("HALB_VIP", vs.ip().to_string())
            .env("HALB_VPORT", vs.port().to_string());
    }
    if spec.pass_addresses {
        command
            .arg(target.ip().to_string())
            .arg(target.port().to_string())
            .env("HALB_RIP", target.ip().to_string())
            .env("HALB_RPORT", target.port().to_string());
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let mut command = Command::from(command);
    command.kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return ProbeOutcome::down(format!("spawn {}: {e}", spec.program.display())),
    };
    let mut guard = GroupGuard(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    );
    let status = child.wait().await;
    guard.0 = None;
    match status {
        Err(e) => ProbeOutcome::down(format!("wait: {e}")),
        Ok(status) => match status.code() {
            Some(0) => ProbeOutcome::up("exit 0"),
            Some(code @ 2..=255) if spec.dynamic_weight => {
                let weight = u32::try_from(code - 2).unwrap_or(0);
                ProbeOutcome {
                    ok: true,
                    reason: format!("exit {code}: weight {weight}"),
                    weight: Some(weight),
                }
            }
            Some(code) => ProbeOutcome::down(format!("exit {code}")),
            None => ProbeOutcome::down(format!("{status}")),
        },
    }
}
