//! VRRP notify hooks: which commands a state change runs, with
//! keepalived's argument order.

use halb_config::{Config, Notify};
use halb_vrrp::State;

/// A VRRP instance changed state (what the VRRP shell reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpEvent {
    /// Instance name.
    pub instance: String,
    /// Its sync group, if any.
    pub group: Option<String>,
    /// The new state.
    pub state: State,
    /// Effective priority now.
    pub priority: u8,
    /// Whether the whole group reached `state` with this change (the
    /// GROUP notify is sent once per group transition).
    pub group_settled: bool,
    /// MASTER, but the previous master may still run the resource groups
    /// (`halb_vrrp::Router::awaiting_peer`): they start here once an event
    /// with the same state and `false` comes.
    pub awaiting_peer: bool,
}

/// A redundant heartbeat path of a VRRP instance changed (what the VRRP
/// shell reports; see `halb_vrrp::router`'s redundant paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpPathEvent {
    /// Instance name.
    pub instance: String,
    /// The path's interface.
    pub interface: String,
    /// The peer's address on it, if known.
    pub peer: Option<std::net::IpAddr>,
    /// Before.
    pub from: halb_vrrp::PathState,
    /// Now.
    pub to: halb_vrrp::PathState,
}

/// keepalived's state words.
pub fn word(s: State) -> &'static str {
    match s {
        State::Master => "MASTER",
        State::Backup => "BACKUP",
        State::Fault => "FAULT",
        State::Initialize => "STOP",
    }
}

fn pick(n: &Notify, s: State) -> Option<&Vec<String>> {
    match s {
        State::Master => n.master.as_ref(),
        State::Backup => n.backup.as_ref(),
        State::Fault => n.fault.as_ref(),
        State::Initialize => n.stop.as_ref(),
    }
}

/// The commands an event runs: the instance's `notify_<state>` (as
/// written), its `notify` with `INSTANCE name STATE priority`, and once
/// the whole sync group got there, the group's hooks with
/// `GROUP name STATE 0`.
pub fn hooks_for(config: &Config, ev: &VrrpEvent) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    if let Some(v) = config.vrrp_instances.iter().find(|v| v.name == ev.instance) {
        push_hooks(
            &mut out,
            &v.notify,
            ev.state,
            "INSTANCE",
            &v.name,
            ev.priority,
        );
    }
    if let (Some(g), true) = (&ev.group, ev.group_settled) {
        if let Some(g) = config.vrrp_sync_groups.iter().find(|x| &x.name == g) {
            // keepalived passes 4 arguments for groups too; a group has
            // no priority of its own: 0.
            push_hooks(&mut out, &g.notify, ev.state, "GROUP", &g.name, 0);
        }
    }
    out
}

/// The `notify_<state>` hook as written, then `notify` with
/// `KIND name STATE priority`.
fn push_hooks(
    out: &mut Vec<Vec<String>>,
    n: &Notify,
    state: State,
    kind: &str,
    name: &str,
    priority: u8,
) {
    if let Some(c) = pick(n, state) {
        out.push(c.clone());
    }
    if let Some(c) = &n.any {
        let mut c = c.clone();
        c.extend([
            kind.to_owned(),
            name.to_owned(),
            word(state).to_owned(),
            priority.to_string(),
        ]);
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        halb_config::parse(
            r#"
[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = 150
virtual_ipaddress = ["192.0.2.100/24"]
notify_master = "/etc/halb/master.sh now"
notify = "/etc/halb/notify.sh"

[[vrrp_sync_group]]
name = "G1"
instances = ["VI_1"]
notify = "/etc/halb/group.sh"
"#,
            std::path::Path::new("t.toml"),
        )
        .expect("valid config")
    }

    #[test]
    fn hooks_follow_keepalived_argument_order() {
        let ev = VrrpEvent {
            instance: "VI_1".into(),
            group: Some("G1".into()),
            state: State::Master,
            priority: 150,
            group_settled: true,
            awaiting_peer: false,
        };
        let h = hooks_for(&cfg(), &ev);
        assert_eq!(
            h,
            vec![
                vec!["/etc/halb/master.sh".to_owned(), "now".to_owned()],
                ["/etc/halb/notify.sh", "INSTANCE", "VI_1", "MASTER", "150"]
                    .map(String::from)
                    .to_vec(),
                ["/etc/halb/group.sh", "GROUP", "G1", "MASTER", "0"]
                    .map(String::from)
                    .to_vec(),
            ]
        );
        let stop = VrrpEvent {
            state: State::Initialize,
            group_settled: false,
            awaiting_peer: false,
            ..ev
        };
        assert_eq!(
            hooks_for(&cfg(), &stop),
            vec![["/etc/halb/notify.sh", "INSTANCE", "VI_1", "STOP", "150"]
                .map(String::from)
                .to_vec()]
        );
    }
}
