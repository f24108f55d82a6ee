//! `halb list`: the running table in the layout of `ipvsadm -L -n`.

use crate::cli::ListArgs;
use crate::control::{self, RealHealth, Request, Response, Status};
use halb_health::Health;
use halb_table::{ConnectionInfo, Persistence, Rates, ServiceStats};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

pub fn run(args: &ListArgs) -> anyhow::Result<ExitCode> {
    if args.timeout {
        print!("{}", timeouts(args.json)?);
        return Ok(ExitCode::SUCCESS);
    }
    let socket = crate::cli::socket_for(args.socket.as_deref(), args.config.as_deref())?;
    let req = if args.connections {
        Request::Connections
    } else {
        Request::Status
    };
    let out = match control::request(&socket, &req)? {
        Response::Status(status) if args.json => serde_json::to_string_pretty(&status)? + "\n",
        Response::Connections { connections } if args.json => {
            serde_json::to_string_pretty(&connections)? + "\n"
        }
        Response::Status(status) if args.stats => render_stats(&status),
        Response::Status(status) if args.rate => render_rate(&status),
        Response::Status(status) => render_table(&status),
        Response::Connections { connections } => render_connections(&connections),
        Response::Error { message } | Response::Rejected { message } => {
            anyhow::bail!("the daemon answered: {message}")
        }
        other => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `Timeout (tcp tcpfin udp): 900 120 300`, as `ipvsadm -L --timeout`:
/// the kernel's values, asked over netlink like ipvsadm does (the daemon
/// only sets those the config gives).
fn timeouts(json: bool) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let t = halb_ipvs::IpvsSocket::open()
        .and_then(|mut s| s.timeouts())
        .context("reading the IPVS timeouts (needs root and the ip_vs module)")?;
    Ok(render_timeouts(&t, json))
}

fn render_timeouts(t: &halb_ipvs::Timeouts, json: bool) -> String {
    if json {
        let v = serde_json::json!({ "tcp": t.tcp, "tcp_fin": t.tcp_fin, "udp": t.udp });
        format!("{v:#}\n")
    } else {
        format!(
            "Timeout (tcp tcpfin udp): {} {} {}\n",
            t.tcp, t.tcp_fin, t.udp
        )
    }
}

fn header(status: &Status) -> String {
    let conns: u64 = status
        .services
        .iter()
        .map(|s| s.counters.active + s.counters.inactive)
        .sum();
    format!(
        "halb {} data plane {} (connections={conns})\n",
        status.version, status.dataplane
    )
}

/// `TCP  127.0.0.1:8080`, `FWM  7`, `FWM  7 IPv6`: the service as
/// ipvsadm names it.
fn service_id(s: &ServiceStats) -> String {
    match s.fwmark {
        Some(m) if s.listen.is_ipv6() => format!("FWM  {m} IPv6"),
        Some(m) => format!("FWM  {m}"),
        None => format!("{}  {}", s.protocol.ipvsadm_name(), s.listen),
    }
}

/// `TCP  127.0.0.1:8080 wrr persistent 600 mask 255.255.255.0`, as
/// ipvsadm's `print_service_entry`.
fn service_line(s: &ServiceStats) -> String {
    let mut line = service_id(s);
    match &s.scheduler_name {
        Some(name) => {
            let _ = write!(line, " {name}");
        }
        None => {
            let _ = write!(line, " {}", s.scheduler);
        }
    }
    if s.flags.fallback || s.flags.port {
        let pre = if s.scheduler == halb_table::SchedulerKind::Mh {
            "mh"
        } else {
            "sh"
        };
        let mut f = Vec::new();
        if s.flags.fallback {
            f.push(format!("{pre}-fallback"));
        }
        if s.flags.port {
            f.push(format!("{pre}-port"));
        }
        let _ = write!(line, " ({})", f.join(","));
    }
    if let Some(p) = &s.persistence {
        let _ = write!(line, " persistent {}", p.timeout.as_secs());
        if let Some(mask) = mask_text(p, s.listen) {
            let _ = write!(line, " mask {mask}");
        }
    }
    if s.one_packet {
        line.push_str(" ops");
    }
    if let Some(f) = s.fallback {
        let _ = write!(line, " fallback {f}");
    }
    line
}

fn mask_text(p: &Persistence, listen: SocketAddr) -> Option<String> {
    match listen {
        SocketAddr::V4(_) if p.prefix_v4 < 32 => {
            let bits = u32::MAX
                .checked_shl(32 - u32::from(p.prefix_v4))
                .unwrap_or(0);
            Some(std::net::Ipv4Addr::from(bits).to_string())
        }
        SocketAddr::V6(_) if p.prefix_v6 < 128 => Some(p.prefix_v6.to_string()),
        _ => None,
    }
}

/// The health check entry of real server `real` of service `s`.
fn override_of(
    status: &Status,
    s: &ServiceStats,
    real: SocketAddr,
) -> Option<halb_director::overrides::Override> {
    status
        .overrides
        .iter()
        .find(|o| o.protocol == s.protocol && o.listen == s.listen && o.real == real)
        .map(|o| o.what)
}

fn health_of<'a>(status: &'a Status, s: &ServiceStats, real: SocketAddr) -> Option<&'a RealHealth> {
    status
        .health
        .iter()
        .find(|h| h.protocol == s.protocol && h.listen == s.listen && h.real == real)
}

/// ` (why)` after a Down real server: the last probe's reason.
fn down_reason(h: Option<&RealHealth>) -> String {
    match h {
        Some(RealHealth {
            health: Health::Down,
            reason: Some(r),
            ..
        }) => format!(" ({r})"),
        _ => String::new(),
    }
}

fn health_text(h: Option<&RealHealth>) -> &'static str {
    match h.map(|h| h.health) {
        Some(Health::Up) => "Up",
        Some(Health::Down) => "Down",
        None => "-",
    }
}

/// `ipvsadm -L -n`, with a Health column (Up, Down, or `-` when the real
/// server has no check). A real server taken out of the table by its
/// check (`on_down = "remove"`) is listed with weight 0 and `removed`.
/// A Down real server ends its line with the last probe's reason.
pub fn render_table(status: &Status) -> String {
    let mut out = header(status);
    out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health\n");
    for s in &status.services {
        out.push_str(&service_line(s));
        out.push('\n');
        for r in &s.reals {
            let mut flags = String::new();
            if r.overloaded {
                flags.push_str(" overloaded");
            }
            if r.removed {
                flags.push_str(" removed");
            }
            if let Some(o) = override_of(status, s, r.addr) {
                flags.push_str(&format!(" [{}]", o.marker()));
            }
            let h = health_of(status, s, r.addr);
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10} {:<6}{}{}",
                r.addr.to_string(),
                r.forward.ipvsadm_name(),
                r.weight,
                r.counters.active,
                r.counters.inactive,
                health_text(h),
                flags.trim_end(),
                down_reason(h)
            );
        }
        let listed = |a: SocketAddr| s.reals.iter().any(|r| r.addr == a);
        for o in status
            .overrides
            .iter()
            .filter(|o| o.protocol == s.protocol && o.listen == s.listen && !listed(o.real))
        {
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10} {:<6} [{}]",
                o.real.to_string(),
                halb_table::Forward::Proxy.ipvsadm_name(),
                0,
                0,
                0,
                "-",
                o.what.marker()
            );
        }
        for h in status
            .health
            .iter()
            .filter(|h| h.protocol == s.protocol && h.listen == s.listen && !listed(h.real))
        {
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10} {:<6} removed{}",
                h.real.to_string(),
                halb_table::Forward::Proxy.ipvsadm_name(),
                0,
                0,
                0,
                health_text(Some(h)),
                down_reason(Some(h)),
            );
        }
    }
    out.push_str(&render_vrrp(status));
    out.push_str(&render_resources(status));
    out.push_str(&render_config_sync(status, crate::sync::unix_now()));
    out.lines()
        .map(|l| l.trim_end().to_string() + "\n")
        .collect()
}

/// The VRRP section (keepalived has no `list`: this is halb's own).
pub fn render_vrrp(status: &Status) -> String {
    let mut out = String::new();
    if let Some(q) = &status.quorum {
        let _ = write!(out, "\nQuorum: {}", q.summary);
        if !q.members.is_empty() {
            let m: Vec<String> = q.members.iter().map(u32::to_string).collect();
            let _ = write!(out, ", members {}", m.join(","));
        }
        if let Some(r) = q.ring {
            let _ = write!(out, ", ring {}/{}", r.node, r.seq);
        }
        match (q.may_hold, q.no_quorum_policy) {
            (true, _) => {}
            (false, halb_quorum::NoQuorumPolicy::Stop) => {
                out.push_str(": resource groups stopped, every VRRP instance in FAULT")
            }
            (false, halb_quorum::NoQuorumPolicy::Ignore) => {
                out.push_str(" (no_quorum_policy = \"ignore\": nothing given up)")
            }
        }
        out.push('\n');
    }
    if status.vrrp.is_empty() {
        return out;
    }
    out.push_str(
        "\nVRRP Instance    Interface VRID State  Prio Eff  Master                  VIPs\n",
    );
    for v in &status.vrrp {
        let _ = writeln!(
            out,
            "{:<16} {:<9} {:<4} {:<6} {:<4} {:<4} {:<23} {}",
            v.name,
            v.interface,
            v.vrid,
            v.state,
            v.priority,
            v.effective_priority,
            v.master.map_or_else(|| "-".to_owned(), |m| m.to_string()),
            v.vips.join(",")
        );
        if let Some(g) = &v.group {
            let _ = writeln!(out, "  sync group {g}");
        }
        for p in &v.paths {
            let _ = write!(out, "  path {}", p.interface);
            if let Some(peer) = p.peer {
                let _ = write!(out, " to {peer}");
            }
            let _ = write!(out, ": {}", p.state);
            match (p.state.as_str(), p.last_heard_ms) {
                (_, Some(ms)) => {
                    let _ = write!(out, ", last advert {:.1} s ago", ms as f64 / 1000.0);
                }
                ("unknown", None) if v.state != "BACKUP" => {
                    out.push_str(" (only a backup hears the master's adverts)");
                }
                _ => {}
            }
            out.push('\n');
        }
        if !v.faults.is_empty() {
            let _ = writeln!(out, "  fault: {}", v.faults.join("; "));
        }
        for h in status.held_faults.iter().filter(|h| h.instance == v.name) {
            let _ = writeln!(
                out,
                "  fault held until resource group {} stops here: {}",
                h.waiting_for.join(", "),
                h.fault
            );
        }
        if v.awaiting_peer {
            let _ = writeln!(
                out,
                "  waiting for the previous master to stop its resource groups before they start here"
            );
        }
        if v.releasing {
            let _ = writeln!(
                out,
                "  releasing: resource groups still stop here (the new master waits for them)"
            );
        }
        if v.takeover {
            let _ = writeln!(
                out,
                "  takeover (halb takeover: priority 254; `halb online` ends it)"
            );
        }
        let _ = write!(
            out,
            "  adverts sent {}, received {}",
            v.adverts_sent, v.adverts_received
        );
        if v.drops.is_empty() {
            out.push_str(", dropped 0\n");
        } else {
            let d: Vec<String> = v.drops.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let _ = writeln!(
                out,
                ", dropped {} ({})",
                v.drops.values().sum::<u64>(),
                d.join(", ")
            );
        }
        if v.address_mismatches > 0 {
            let _ = writeln!(
                out,
                "  {} adverts listed other virtual addresses than configured here",
                v.address_mismatches
            );
        }
    }
    out
}

/// `[global.sync]`: one line per peer, "config differs from d2 since …".
pub fn render_config_sync(status: &Status, now_unix: f64) -> String {
    let mut out = String::new();
    if status.config_sync.is_empty() {
        return out;
    }
    out.push('\n');
    for p in &status.config_sync {
        let since = p.since_unix.map_or_else(String::new, |t| {
            let ago = (now_unix - t).max(0.0) as u64;
            format!(
                " since {} ({} ago)",
                halb_alert::sender::rfc3339(t as u64),
                crate::list::ago(ago)
            )
        });
        let ours = halb_sync::short(&p.ours);
        let theirs = p.theirs.as_deref().map_or("-", halb_sync::short);
        let _ = match p.state.as_str() {
            "in_sync" => writeln!(out, "config in sync with {}{since} ({ours})", p.peer),
            "differs" => writeln!(
                out,
                "config differs from {}{since} (ours {ours}, theirs {theirs}; `halb config diff {}`)",
                p.peer, p.peer
            ),
            "unreachable" => writeln!(
                out,
                "config not compared with {} at {}{since}: {}",
                p.peer,
                p.address,
                p.reason.as_deref().unwrap_or("unreachable")
            ),
            _ => writeln!(out, "config not compared with {} yet", p.peer),
        };
    }
    out
}

/// A duration in seconds as "42s", "3m12s", "2h05m", "3d04h".
pub fn ago(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// The resource groups (Pacemaker's `crm_mon` in a few lines): group,
/// what it follows and whether it is active here, then each member with
/// its agent, state, fail count against the threshold and last failure.
pub fn render_resources(status: &Status) -> String {
    use halb_resource::State;
    let mut out = String::new();
    if status.resources.is_empty() {
        return out;
    }
    let state = |s: State| -> &'static str {
        match s {
            State::Started => "Started",
            State::Stopped => "Stopped",
            State::Starting => "Starting",
            State::Stopping => "Stopping",
            State::Failed => "FAILED",
            State::Blocked => "BLOCKED",
            State::Unmanaged => "Unmanaged",
            State::Probing => "Probing",
            State::Unknown => "Unknown",
            State::Partial => "Partial",
        }
    };
    let secs = |ms: u64| format!("{:.1}s", ms as f64 / 1000.0);
    out.push_str(
        "
Resource Group   Follows          Here     State
",
    );
    for g in &status.resources {
        let _ = writeln!(
            out,
            "{:<16} {:<16} {:<8} {}{}",
            g.name,
            g.follows,
            if g.active { "active" } else { "standby" },
            state(g.state),
            if g.managed { "" } else { " (maintenance)" }
        );
        if let Some(b) = &g.blocked {
            let _ = writeln!(out, "  BLOCKED: {b} (a member may still run here; `halb resource cleanup` once it is safe)");
        }
        if let Some(ban) = &g.ban {
            let until = ban.expires_in_ms.map_or_else(
                || "until cleanup".to_owned(),
                |ms| format!("for {}", secs(ms)),
            );
            let _ = writeln!(out, "  banned here {until}: {}", ban.reason);
        }
        if let Some(m) = &g.held_from {
            let _ = writeln!(
                out,
                "  held stopped from {m} (on_fail = stop) until cleanup"
            );
        }
        for m in &g.members {
            let fails = if m.migration_threshold > 0 {
                format!("{}/{}", m.fail_count, m.migration_threshold)
            } else {
                m.fail_count.to_string()
            };
            let _ = writeln!(
                out,
                "  -> {:<14} {:<28} {:<9} fails {}",
                m.name,
                m.agent,
                state(m.state),
                fails
            );
            if let Some(f) = &m.last_failure {
                let _ = writeln!(
                    out,
                    "     last failure: {} {} ({}){}, {} ago, took {}",
                    f.op,
                    f.exit_code
                        .map_or_else(|| "-".to_owned(), |c| c.to_string()),
                    f.exit_code_name,
                    f.exit_reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default(),
                    secs(f.ago_ms),
                    secs(f.duration_ms)
                );
            }
        }
    }
    out
}

/// ipvsadm's `print_largenum`: exact below 100 million, then K, M, G, T.
fn largenum(i: u64) -> String {
    match i {
        0..=99_999_999 => format!("{i:>9}"),
        100_000_000..=999_999_999 => format!("{:>8}K", i / 1_000),
        1_000_000_000..=99_999_999_999 => format!("{:>8}M", i / 1_000_000),
        100_000_000_000..=99_999_999_999_999 => format!("{:>8}G", i / 1_000_000_000),
        _ => format!("{:>8}T", i / 1_000_000_000_000),
    }
}

fn numbers_table(
    status: &Status,
    titles: [&str; 5],
    row: impl Fn(&[u64; 5]) -> String,
    pick: impl Fn(&halb_table::Counters, &Rates) -> [u64; 5],
) -> String {
    let mut out = header(status);
    let _ = write!(out, "{:<33}", "Prot LocalAddress:Port");
    for t in titles {
        let _ = write!(out, "{t:>9}");
    }
    out.push_str("\n  -> RemoteAddress:Port\n");
    for s in &status.services {
        let left = service_id(s);
        let _ = writeln!(out, "{left:<33}{}", row(&pick(&s.counters, &s.rates)));
        for r in &s.reals {
            let left = format!("  -> {}", r.addr);
            let _ = writeln!(out, "{left:<33}{}", row(&pick(&r.counters, &r.rates)));
        }
    }
    out
}

/// `ipvsadm -L -n --stats`.
pub fn render_stats(status: &Status) -> String {
    numbers_table(
        status,
        ["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"],
        |v| v.iter().map(|&n| largenum(n)).collect(),
        |c, _| {
            [
                c.conns,
                c.packets_in,
                c.packets_out,
                c.bytes_in,
                c.bytes_out,
            ]
        },
    )
}

/// `ipvsadm -L -n --rate`.
pub fn render_rate(status: &Status) -> String {
    numbers_table(
        status,
        ["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"],
        |v| v.iter().map(|&n| largenum(n)).collect(),
        |_, r| [r.cps, r.inpps, r.outpps, r.inbps, r.outbps].map(|x| x.round().max(0.0) as u64),
    )
}

/// `ipvsadm -L -n -c`.
pub fn render_connections(conns: &[ConnectionInfo]) -> String {
    let mut out = String::from("halb connection entries\n");
    let _ = writeln!(
        out,
        "{:<3} {:<6} {:<11} {:<22} {:<22} {:<22} {:>6} {:>12} {:>12}",
        "pro",
        "expire",
        "state",
        "source",
        "virtual",
        "destination",
        "age",
        "bytes-in",
        "bytes-out"
    );
    for c in conns {
        let exp = c.expires_ms / 1000;
        let age = c.age_ms / 1000;
        let _ = writeln!(
            out,
            "{:<3} {:02}:{:02}  {:<11} {:<22} {:<22} {:<22} {:>6} {:>12} {:>12}",
            c.protocol.ipvsadm_name(),
            exp / 60,
            exp % 60,
            c.state,
            c.client.to_string(),
            c.virtual_addr.to_string(),
            c.real.to_string(),
            format!("{}s", age),
            c.bytes_in,
            c.bytes_out
        );
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use halb_table::{Counters, Forward, Protocol, RealStats, SchedulerKind};
    use std::time::Duration;

    fn health(port: u16, state: Health, transitions: u64) -> RealHealth {
        RealHealth {
            service: "web".into(),
            protocol: Protocol::Tcp,
            listen: ([127, 0, 0, 1], 8080).into(),
            real: ([127, 0, 0, 1], port).into(),
            health: state,
            reason: Some(
                match state {
                    Health::Up => "HTTP 200",
                    Health::Down => "HTTP 503",
                }
                .into(),
            ),
            transitions,
            probes: 0,
            failures: 0,
            last_duration_ms: None,
            configured_weight: 1,
            dynamic_weight: None,
            on_down: halb_table::OnDown::Remove,
            check: "http GET /health".into(),
        }
    }

    pub(crate) fn status() -> Status {
        let real = |port: u16, weight: u32, active: u64, inactive: u64, conns: u64| RealStats {
            addr: ([127, 0, 0, 1], port).into(),
            weight,
            forward: Forward::Proxy,
            overloaded: false,
            removed: false,
            left_out_ms: 0,
            counters: Counters {
                conns,
                active,
                inactive,
                bytes_in: conns * 80,
                bytes_out: conns * 250_000_000,
                packets_in: 0,
                packets_out: 0,
            },
            rates: Rates {
                cps: conns as f64 / 10.0,
                inbps: 1234.4,
                ..Rates::default()
            },
        };
        let mut reals = vec![
            real(18081, 1, 1, 0, 10),
            real(18082, 2, 2, 1, 20),
            real(18083, 0, 3, 0, 30),
        ];
        reals[1].overloaded = true;
        let mut web = ServiceStats {
            name: "web".into(),
            scheduler_name: None,
            protocol: Protocol::Tcp,
            listen: ([127, 0, 0, 1], 8080).into(),
            scheduler: SchedulerKind::Wrr,
            flags: Default::default(),
            fwmark: None,
            one_packet: false,
            persistence: Some(Persistence {
                timeout: Duration::from_secs(600),
                prefix_v4: 24,
                prefix_v6: 128,
            }),
            fallback: Some(([127, 0, 0, 1], 9999).into()),
            fallback_conns: 0,
            udp_flows: 0,
            udp_flows_evicted: 0,
            counters: Counters::default(),
            rates: Rates::default(),
            reals,
        };
        for r in &web.reals {
            web.counters.add(&r.counters);
        }
        let dns = ServiceStats {
            name: "dns".into(),
            scheduler_name: None,
            protocol: Protocol::Udp,
            listen: "[::1]:5353".parse().unwrap(),
            scheduler: SchedulerKind::Sh,
            flags: Default::default(),
            fwmark: None,
            one_packet: false,
            persistence: None,
            fallback: None,
            fallback_conns: 0,
            udp_flows: 0,
            udp_flows_evicted: 0,
            counters: Counters::default(),
            rates: Rates::default(),
            reals: vec![RealStats {
                addr: "[::1]:53".parse().unwrap(),
                weight: 1,
                forward: Forward::Proxy,
                overloaded: false,
                removed: true,
                left_out_ms: 0,
                counters: Counters {
                    packets_in: 5,
                    packets_out: 5,
                    ..Counters::default()
                },
                rates: Rates::default(),
            }],
        };
        Status {
            version: "0.1.0".into(),
            dataplane: "proxy".into(),
            config: None,
            uptime_secs: 5,
            services: vec![web, dns],
            health: vec![
                health(18081, Health::Up, 1),
                health(18082, Health::Up, 3),
                health(18084, Health::Down, 2),
            ],
            health_transitions: 6,
            alerts: halb_alert::AlertStats::default(),
            resources: Vec::new(),
            overrides: Vec::new(),
            held_faults: Vec::new(),
            reloads: Default::default(),
            sync_daemon: None,
            configured_weights: Vec::new(),
            config_sync: Vec::new(),
            quorum: None,
            vrrp: vec![crate::control::VrrpStatus {
                name: "VI_1".into(),
                interface: "eth0".into(),
                vrid: 51,
                version: 3,
                state: "MASTER".into(),
                priority: 150,
                effective_priority: 100,
                master: Some("192.0.2.1".parse().unwrap()),
                vips: vec!["192.0.2.100/24".into()],
                group: Some("G1".into()),
                faults: vec![],
                adverts_sent: 10,
                adverts_received: 0,
                became_master: 1,
                address_mismatches: 0,
                takeover: false,
                awaiting_peer: false,
                releasing: false,
                paths: vec![],
                drops: [("unknown_vrid".to_owned(), 3), ("bad_auth".to_owned(), 1)].into(),
            }],
        }
    }

    #[test]
    fn table_layout() {
        insta::assert_snapshot!(render_table(&status()));
    }

    #[test]
    fn config_sync_lines() {
        let mut st = status();
        let row = |peer: &str, state: &str, theirs: Option<&str>, reason: Option<&str>| {
            crate::control::ConfigSyncStatus {
                peer: peer.into(),
                address: "192.0.2.2:7947".parse().unwrap(),
                state: state.into(),
                since_unix: Some(1_796_688_000.0),
                ours: "f0af5b28c37d884f".into(),
                theirs: theirs.map(Into::into),
                reason: reason.map(Into::into),
            }
        };
        st.config_sync = vec![
            row("d2", "differs", Some("8a04d2d87d1b0000"), None),
            row("d3", "in_sync", Some("f0af5b28c37d884f"), None),
            row("d4", "unreachable", None, Some("authentication failed")),
        ];
        insta::assert_snapshot!(render_config_sync(&st, 1_796_688_222.0));
        assert!(render_table(&st).contains("config differs from d2 since "));
        assert_eq!(ago(3 * 3600 + 5 * 60), "3h05m");
    }

    #[test]
    fn quorum_line() {
        let mut st = status();
        let t0 = std::time::Instant::now();
        let mut t = halb_quorum::Tracker::new(halb_quorum::Settings::corosync(), t0);
        t.handle_event(
            halb_quorum::Event::Notification(halb_quorum::Notification {
                quorate: false,
                ring: Some(halb_quorum::Ring { node: 1, seq: 36 }),
                members: vec![1],
                votes: Some(halb_quorum::Votes {
                    have: 1,
                    expected: 3,
                    needed: 2,
                }),
            }),
            t0,
        );
        st.quorum = Some(t.status());
        let out = render_vrrp(&st);
        assert!(
            out.starts_with(
                "\nQuorum: no quorum (corosync: 1 of 3 votes), members 1, ring 1/36: resource groups stopped, every VRRP instance in FAULT\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn stats_layout() {
        insta::assert_snapshot!(render_stats(&status()));
    }

    #[test]
    fn rate_layout() {
        insta::assert_snapshot!(render_rate(&status()));
    }

    #[test]
    fn timeouts_as_ipvsadm() {
        let t = halb_ipvs::Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        };
        assert_eq!(
            render_timeouts(&t, false),
            "Timeout (tcp tcpfin udp): 900 120 300\n"
        );
        let v: serde_json::Value = serde_json::from_str(&render_timeouts(&t, true)).unwrap();
        assert_eq!(v["tcp_fin"], 120);
    }

    #[test]
    fn connections_layout() {
        let c = ConnectionInfo {
            protocol: Protocol::Tcp,
            client: ([127, 0, 0, 1], 50000).into(),
            virtual_addr: ([127, 0, 0, 1], 8080).into(),
            real: ([127, 0, 0, 1], 18081).into(),
            state: "ESTABLISHED".into(),
            age_ms: 61_000,
            expires_ms: 899_000,
            bytes_in: 78,
            bytes_out: 180,
        };
        insta::assert_snapshot!(render_connections(&[c]));
    }

    /// Firewall-mark services (IPv4 and IPv6) and a scheduler module halb
    /// does not know are named as ipvsadm names them, in every view.
    #[test]
    fn fwmark_and_unknown_scheduler_as_ipvsadm() {
        let mut st = status();
        let mut fwm = st.services[0].clone();
        fwm.fwmark = Some(7);
        fwm.listen = ([0, 0, 0, 0], 0).into();
        fwm.persistence = None;
        fwm.fallback = None;
        let mut fwm6 = fwm.clone();
        fwm6.fwmark = Some(8);
        fwm6.listen = "[::]:0".parse().unwrap();
        fwm6.scheduler_name = Some("twos".into());
        st.services = vec![fwm, fwm6];
        let table = render_table(&st);
        assert!(table.contains("\nFWM  7 wrr\n"), "{table}");
        assert!(table.contains("\nFWM  8 IPv6 twos\n"), "{table}");
        for out in [render_stats(&st), render_rate(&st)] {
            assert!(out.contains("\nFWM  7 "), "{out}");
            assert!(out.contains("\nFWM  8 IPv6 "), "{out}");
            assert!(
                !out.contains("0.0.0.0:0") && !out.contains("[::]:0"),
                "{out}"
            );
        }
    }

    #[test]
    fn largenum_matches_ipvsadm() {
        assert_eq!(largenum(99_999_999), " 99999999");
        assert_eq!(largenum(123_456_789), "  123456K");
        assert_eq!(largenum(12_345_678_901), "   12345M");
    }
}
