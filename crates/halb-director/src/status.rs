//! What the director reports about its real servers: the health rows
//! of `halb list` and the dashboard, built from the health engine's own
//! state (the director keeps no copy of it).

use halb_health::{CheckSpec, Health, ProbeSpec};
use halb_table::{OnDown, Protocol};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The health of one real server of one virtual service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealHealth {
    /// The virtual service's name, protocol and listen address.
    pub service: String,
    pub protocol: Protocol,
    pub listen: SocketAddr,
    pub real: SocketAddr,
    pub health: Health,
    /// Why: the last probe's reason ("HTTP 503", "login failed: …"),
    /// from the first probe on; before any probe, the forced state or none.
    pub reason: Option<String>,
    /// Transitions of this check since it was configured.
    pub transitions: u64,
    /// Probes completed (successes and failures, timeouts included)
    /// since the check was configured.
    #[serde(default)]
    pub probes: u64,
    /// Probes that failed (or timed out).
    #[serde(default)]
    pub failures: u64,
    /// How long the last probe took, in milliseconds (none before the
    /// first result).
    #[serde(default)]
    pub last_duration_ms: Option<u64>,
    /// The weight in the config.
    pub configured_weight: u32,
    /// The weight a dynamic external check reported, if any.
    pub dynamic_weight: Option<u32>,
    /// What happens to it while down.
    pub on_down: OnDown,
    /// What the check does, e.g. `http GET 127.0.0.1:18081/health every 1s, rise 2 fall 2`.
    pub check: String,
}

/// `http GET 127.0.0.1:18081/health every 1s`: what a check does.
pub fn describe(spec: &CheckSpec) -> String {
    let t = spec.target;
    let what = match &spec.probe {
        ProbeSpec::Tcp => format!("tcp connect {t}"),
        ProbeSpec::Http(h) => format!(
            "{} {} {t}{}",
            if h.tls.is_some() { "https" } else { "http" },
            h.method.as_str(),
            h.path
        ),
        ProbeSpec::External(e) => format!("external {}", e.program.display()),
        // Never the password.
        ProbeSpec::Redis(_) => format!("redis PING {t}"),
        ProbeSpec::Smtp(s) => format!(
            "{} EHLO {} {t}",
            if s.starttls.is_some() {
                "submission"
            } else {
                "smtp"
            },
            s.helo_name
        ),
        ProbeSpec::SimpleTcp(s) => format!(
            "simpletcp{} {t}{}",
            if s.tls.is_some() { " over TLS" } else { "" },
            s.expect
                .as_ref()
                .map(|r| format!(" expecting /{}/", r.as_str()))
                .unwrap_or_default()
        ),
        // Never the password.
        ProbeSpec::Ftp(f) => match &f.retrieve {
            Some(file) => format!("ftp login {} {t} RETR {file}", f.username),
            None => format!("ftp login {} {t}", f.username),
        },
        ProbeSpec::Imap(m) | ProbeSpec::Pop(m) => {
            let kind = match (&spec.probe, m.tls.is_some()) {
                (ProbeSpec::Imap(_), false) => "imap",
                (ProbeSpec::Imap(_), true) => "imaps",
                (_, false) => "pop",
                (_, true) => "pops",
            };
            match &m.username {
                Some(u) => format!("{kind} login {u} {t}"),
                None => format!("{kind} greeting {t}"),
            }
        }
        ProbeSpec::Nntp => format!("nntp greeting {t}"),
        // Never the password.
        ProbeSpec::Ldap(l) => {
            let kind = if l.tls.is_some() { "ldaps" } else { "ldap" };
            let who = l.bind_dn.as_deref().unwrap_or("(anonymous)");
            match &l.search_base {
                Some(b) if b.is_empty() => format!("{kind} bind {who} {t} search (root DSE)"),
                Some(b) => format!("{kind} bind {who} {t} search {b}"),
                None => format!("{kind} bind {who} {t}"),
            }
        }
        // Never the secret or the password.
        ProbeSpec::Radius(r) => format!(
            "radius Access-Request {} {t}{}",
            r.username,
            if r.require_accept {
                " expecting Accept"
            } else {
                ""
            }
        ),
        ProbeSpec::Oracle => format!("oracle {t} (not supported)"),
        ProbeSpec::Dns(d) => format!("dns {} {} {t}", d.query_name, d.query_type.as_str()),
        ProbeSpec::Udp(u) => format!(
            "udp {t}{}",
            if u.expect_reply {
                " expecting a reply"
            } else {
                ""
            }
        ),
        ProbeSpec::Icmp => format!("icmp echo {}", t.ip()),
        ProbeSpec::Mysql(m) | ProbeSpec::Pgsql(m) => {
            let kind = if matches!(spec.probe, ProbeSpec::Mysql(_)) {
                "mysql"
            } else {
                "pgsql"
            };
            // Never the password.
            match (&m.username, &m.query) {
                (None, _) => format!("{kind} greeting {t}"),
                (Some(u), None) => format!("{kind} login {u} {t}"),
                (Some(u), Some(q)) => format!("{kind} login {u} {t} query {q:?}"),
            }
        }
        ProbeSpec::On => return "forced on".to_owned(),
        ProbeSpec::Off => return "forced off".to_owned(),
        ProbeSpec::Sip(s) => format!(
            "sip OPTIONS over {} {t}",
            s.transport.as_str().to_ascii_lowercase()
        ),
        ProbeSpec::HttpProxy(h) => format!("http_proxy {} {} via {t}", h.method.as_str(), h.path),
    };
    format!(
        "{what} every {:?}, rise {} fall {}",
        spec.timing.interval, spec.timing.rise, spec.timing.fall
    )
}
