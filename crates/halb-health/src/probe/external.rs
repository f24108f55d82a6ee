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
use halb_process::Exit;

/// Runs the command through halb's one process runner. No timeout of
/// its own: the caller ([`super::run`]) bounds it, and dropping this
/// future kills the process group.
pub async fn probe(target: std::net::SocketAddr, spec: &ExternalSpec) -> ProbeOutcome {
    let mut run = halb_process::Spec {
        program: spec.program.clone(),
        args: spec.args.clone(),
        ..halb_process::Spec::default()
    };
    // ldirectord's order: VIP VPORT RIP RPORT.
    if spec.pass_addresses {
        if let Some(vs) = spec.service {
            run.args
                .extend([vs.ip().to_string(), vs.port().to_string()]);
            run.env.push(("HALB_VIP".into(), vs.ip().to_string()));
            run.env.push(("HALB_VPORT".into(), vs.port().to_string()));
        }
        run.args
            .extend([target.ip().to_string(), target.port().to_string()]);
        run.env.push(("HALB_RIP".into(), target.ip().to_string()));
        run.env
            .push(("HALB_RPORT".into(), target.port().to_string()));
    }
    let outcome = halb_process::run(&run).await;
    match outcome.exit {
        Exit::Code(0) => ProbeOutcome::up("exit 0"),
        Exit::Code(code @ 2..=255) if spec.dynamic_weight => {
            let weight = u32::try_from(code - 2).unwrap_or(0);
            ProbeOutcome {
                ok: true,
                reason: format!("exit {code}: weight {weight}"),
                weight: Some(weight),
            }
        }
        Exit::Code(code) => ProbeOutcome::down(format!("exit {code}")),
        Exit::Spawn(e) => ProbeOutcome::down(format!("spawn {e}")),
        other => ProbeOutcome::down(other.to_string()),
    }
}
