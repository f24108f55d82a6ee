//! `/metrics`: the daemon's [`Status`] as Prometheus metrics, through the
//! `prometheus-client` crate. The names and labels, and how they map onto
//! node_exporter's `node_ipvs_*`, keepalived-exporter's `keepalived_*`
//! and HAProxy's `haproxy_server_*`, are in docs/metrics.md.
//!
//! The rendering is a pure function of a status: the dashboard's
//! snapshot (the director's part as the daemon's task publishes it, the
//! data planes' counters read through
//! [`halb_table::Observer::stats_unlocked`], the VRRP thread's published
//! status). A scrape therefore never takes a lock a connection or the
//! VRRP thread waits on; see [`crate::control::Reader::metrics_status`].
//!
//! Two encodings: OpenMetrics 1.0 (what Prometheus asks for in its
//! `Accept` header) as the crate writes it, and the classic text format
//! 0.0.4 for anyone else (curl, `promtool check metrics`), which differs
//! only in a counter family's name (`x_total` in its `# HELP`/`# TYPE`
//! lines) and has no `# UNIT` or `# EOF` line.

use crate::control::Status;
use halb_health::Health;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;

/// The content type of the OpenMetrics encoding.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the classic text encoding.
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

type Labels = Vec<(String, String)>;
type GaugeFamily = Family<Labels, Gauge>;
type GaugeF64Family = Family<Labels, Gauge<f64, AtomicU64>>;
type CounterFamily = Family<Labels, Counter>;

/// keepalived's VRRP states, as `halb list` names them.
const VRRP_STATES: [&str; 4] = ["INIT", "BACKUP", "MASTER", "FAULT"];

/// Resource group and member states (`halb_resource::State`).
const RESOURCE_STATES: [halb_resource::State; 10] = {
    use halb_resource::State::*;
    [
        Started, Stopped, Starting, Stopping, Failed, Blocked, Unmanaged, Probing, Unknown, Partial,
    ]
};

/// A registry filled for one scrape.
struct Reg(Registry);

impl Reg {
    fn gauge(&mut self, name: &str, help: &str) -> GaugeFamily {
        let f = GaugeFamily::default();
        self.0.register(name, help, f.clone());
        f
    }

    fn gauge_f64(&mut self, name: &str, help: &str) -> GaugeF64Family {
        let f = GaugeF64Family::default();
        self.0.register(name, help, f.clone());
        f
    }

    /// `name` without `_total`: the encoder adds it.
    fn counter(&mut self, name: &str, help: &str) -> CounterFamily {
        let f = CounterFamily::default();
        self.0.register(name, help, f.clone());
        f
    }
}

/// A label value as the exposition formats write it: backslash, double
/// quote and line feed escaped (the crate writes values as they are, and
/// a service name or a drop reason is not ours to trust).
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str(r#"\""#),
            '\n' => out.push_str(r"\n"),
            c => out.push(c),
        }
    }
    out
}

fn escaped(labels: &Labels) -> Labels {
    labels.iter().map(|(k, v)| (k.clone(), escape(v))).collect()
}

fn set(f: &GaugeFamily, labels: &Labels, v: impl TryInto<i64>) {
    f.get_or_create(&escaped(labels))
        .set(v.try_into().unwrap_or(i64::MAX));
}

fn set_f64(f: &GaugeF64Family, labels: &Labels, v: f64) {
    f.get_or_create(&escaped(labels)).set(v);
}

fn add(f: &CounterFamily, labels: &Labels, v: u64) {
    f.get_or_create(&escaped(labels)).inc_by(v);
}

fn l(pairs: &[(&str, String)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// node_exporter's labels of an IPVS service, with the service's name.
fn service_labels(
    name: &str,
    proto: halb_table::Protocol,
    listen: SocketAddr,
    fwmark: Option<u32>,
) -> Labels {
    l(&[
        ("service", name.to_owned()),
        ("proto", proto.to_string().to_uppercase()),
        ("local_address", listen.ip().to_string()),
        ("local_port", listen.port().to_string()),
        (
            "local_mark",
            fwmark.map(|m| m.to_string()).unwrap_or_default(),
        ),
    ])
}

fn real_labels(service: &Labels, real: SocketAddr) -> Labels {
    let mut v = service.clone();
    v.push(("remote_address".into(), real.ip().to_string()));
    v.push(("remote_port".into(), real.port().to_string()));
    v
}

/// The OpenMetrics text of `st`.
pub fn render_openmetrics(st: &Status) -> String {
    let reg = registry(st);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &reg.0);
    out
}

/// The classic text format (0.0.4) of `st`.
pub fn render_text(st: &Status) -> String {
    to_text_format(&render_openmetrics(st))
}

/// OpenMetrics text as the classic text format: a counter family's
/// `# HELP` and `# TYPE` lines name its samples (`x_total`), and there is
/// no `# UNIT` or `# EOF` line.
pub fn to_text_format(om: &str) -> String {
    let mut out = String::with_capacity(om.len() + 1024);
    let mut help: Option<&str> = None;
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(h) = help.replace(rest) {
                out.push_str("# HELP ");
                out.push_str(h);
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = if kind == "counter" && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            if let Some(h) = help.take() {
                let text = h.split_once(' ').map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        if let Some(h) = help.take() {
            out.push_str("# HELP ");
            out.push_str(h);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn registry(st: &Status) -> Reg {
    let mut r = Reg(Registry::default());

    let info = r.gauge(
        "halb_build_info",
        "halb's version and data planes; always 1.",
    );
    set(
        &info,
        &l(&[
            ("version", st.version.clone()),
            ("dataplane", st.dataplane.clone()),
        ]),
        1,
    );
    let up = r.gauge("halb_uptime_seconds", "Seconds since the daemon started.");
    set(&up, &Labels::new(), st.uptime_secs);

    services(&mut r, st);
    checks(&mut r, st);
    vrrp(&mut r, st);
    resources(&mut r, st);

    let alerts = &st.alerts;
    for (name, help, v) in [
        ("halb_alerts_sent", "Alerts delivered.", alerts.sent),
        (
            "halb_alerts_failed",
            "Alerts given up after their last retry.",
            alerts.failed,
        ),
        (
            "halb_alerts_retries",
            "Alert deliveries retried after a failed attempt.",
            alerts.retries,
        ),
        (
            "halb_alerts_dropped",
            "Alerts dropped because the sender's queue was full.",
            alerts.dropped,
        ),
    ] {
        add(&r.counter(name, help), &Labels::new(), v);
    }

    let sync = r.gauge(
        "halb_ipvs_sync_daemon_state",
        "The IPVS connection-sync daemon's role (1 for the current one); absent without [global.ipvs.sync_daemon].",
    );
    if let Some(role) = &st.sync_daemon {
        for s in ["master", "backup"] {
            set(&sync, &l(&[("state", s.to_owned())]), i64::from(role == s));
        }
    }

    let in_sync = r.gauge(
        "halb_config_in_sync",
        "1 while the peer director's running config has the same digest as ours ([global.sync]), 0 while it differs or cannot be asked; absent before the first answer.",
    );
    for p in &st.config_sync {
        if p.state != "unknown" {
            set(
                &in_sync,
                &l(&[("peer", p.peer.clone())]),
                i64::from(p.state == "in_sync"),
            );
        }
    }
    let quorum = r.gauge(
        "halb_quorum",
        "1 while this director's partition is quorate (for the settle time) and may hold resource groups and VIPs, 0 otherwise; absent without [global.quorum].",
    );
    if let Some(q) = &st.quorum {
        set(&quorum, &Labels::new(), i64::from(q.may_hold));
    }

    add(
        &r.counter(
            "halb_reloads",
            "Reloads asked for (SIGHUP, halb reload), accepted or not.",
        ),
        &Labels::new(),
        st.reloads.total,
    );
    add(
        &r.counter(
            "halb_reload_failures",
            "Reloads rejected or applied with errors.",
        ),
        &Labels::new(),
        st.reloads.failed,
    );
    let last = r.gauge_f64(
        "halb_last_reload_success_timestamp_seconds",
        "When the last clean reload ended (Unix time); absent before the first.",
    );
    if let Some(t) = st.reloads.last_success_unix {
        set_f64(&last, &Labels::new(), t);
    }

    let ov = r.gauge(
        "halb_backend_override",
        "A runtime override of a real server (halb weight|drain|disable), 1 while in force.",
    );
    for o in &st.overrides {
        let svc = service_labels(&o.service, o.protocol, o.listen, None);
        let mut labels = real_labels(&svc, o.real);
        let (kind, weight) = match o.what {
            halb_director::overrides::Override::Weight(n) => ("weight", Some(n)),
            halb_director::overrides::Override::Drain => ("drain", None),
            halb_director::overrides::Override::Disable => ("disable", None),
        };
        labels.push(("override".into(), kind.to_owned()));
        labels.push((
            "weight".into(),
            weight.map(|w| w.to_string()).unwrap_or_default(),
        ));
        set(&ov, &labels, 1);
    }
    r
}

/// Per virtual service and real server: weights, health, connections,
/// bytes and packets (node_exporter's `node_ipvs_backend_*` names).
fn services(r: &mut Reg, st: &Status) {
    let s_conns = r.counter(
        "halb_service_connections",
        "Connections (TCP) or flows (UDP) scheduled by the virtual service.",
    );
    let s_in_bytes = r.counter(
        "halb_service_incoming_bytes",
        "Bytes from clients to the virtual service.",
    );
    let s_out_bytes = r.counter(
        "halb_service_outgoing_bytes",
        "Bytes from the virtual service to clients.",
    );
    let s_in_pkts = r.counter(
        "halb_service_incoming_packets",
        "Packets (datagrams, or reads for TCP in the proxy) from clients.",
    );
    let s_out_pkts = r.counter(
        "halb_service_outgoing_packets",
        "Packets (datagrams, or writes for TCP in the proxy) to clients.",
    );
    let s_active = r.gauge(
        "halb_service_connections_active",
        "Established connections of the virtual service.",
    );
    let s_inactive = r.gauge(
        "halb_service_connections_inactive",
        "Connections of the virtual service not established (or UDP flows).",
    );
    let s_fallback = r.counter(
        "halb_service_fallback_connections",
        "Connections sent to the fallback server.",
    );
    let s_flows = r.gauge(
        "halb_service_udp_flows",
        "UDP flows open (userspace proxy).",
    );
    let s_evicted = r.counter(
        "halb_service_udp_flows_evicted",
        "UDP flows evicted at the flow caps.",
    );

    let b_weight = r.gauge(
        "halb_backend_weight",
        "The real server's weight in the applied table (0: quiescent).",
    );
    let b_cweight = r.gauge(
        "halb_backend_configured_weight",
        "The real server's weight in the config.",
    );
    let b_up = r.gauge(
        "halb_backend_up",
        "1 if the real server is healthy (or has no check), 0 if its check is down.",
    );
    let b_active = r.gauge(
        "halb_backend_connections_active",
        "Established connections to the real server.",
    );
    let b_inactive = r.gauge(
        "halb_backend_connections_inactive",
        "Connections to the real server not established (or UDP flows).",
    );
    let b_conns = r.counter(
        "halb_backend_connections",
        "Connections scheduled to the real server.",
    );
    let b_in_bytes = r.counter(
        "halb_backend_incoming_bytes",
        "Bytes from clients forwarded to the real server.",
    );
    let b_out_bytes = r.counter(
        "halb_backend_outgoing_bytes",
        "Bytes from the real server forwarded to clients.",
    );
    let b_in_pkts = r.counter(
        "halb_backend_incoming_packets",
        "Packets from clients forwarded to the real server.",
    );
    let b_out_pkts = r.counter(
        "halb_backend_outgoing_packets",
        "Packets from the real server forwarded to clients.",
    );
    let b_overloaded = r.gauge(
        "halb_backend_overloaded",
        "1 while the real server is over its upper connection threshold.",
    );
    let b_left_out = r.gauge(
        "halb_backend_passive_left_out",
        "1 while passive health leaves the real server out after failed connects.",
    );

    // Health and configured weight by (protocol, listen, real).
    type Key = (halb_table::Protocol, SocketAddr, SocketAddr);
    let health: BTreeMap<Key, &crate::control::RealHealth> = st
        .health
        .iter()
        .map(|h| ((h.protocol, h.listen, h.real), h))
        .collect();
    let configured: BTreeMap<Key, u32> = st
        .configured_weights
        .iter()
        .map(|c| ((c.protocol, c.listen, c.real), c.weight))
        .collect();
    let mut seen: std::collections::BTreeSet<Key> = Default::default();

    for s in &st.services {
        let svc = service_labels(&s.name, s.protocol, s.listen, s.fwmark);
        let c = &s.counters;
        add(&s_conns, &svc, c.conns);
        add(&s_in_bytes, &svc, c.bytes_in);
        add(&s_out_bytes, &svc, c.bytes_out);
        add(&s_in_pkts, &svc, c.packets_in);
        add(&s_out_pkts, &svc, c.packets_out);
        add(&s_fallback, &svc, s.fallback_conns);
        if s.protocol == halb_table::Protocol::Udp {
            set(&s_flows, &svc, s.udp_flows);
            add(&s_evicted, &svc, s.udp_flows_evicted);
        }
        for real in &s.reals {
            let key = (s.protocol, s.listen, real.addr);
            seen.insert(key);
            let labels = real_labels(&svc, real.addr);
            let rc = &real.counters;
            set(&b_weight, &labels, real.weight);
            let h = health.get(&key);
            set(
                &b_cweight,
                &labels,
                configured
                    .get(&key)
                    .copied()
                    .or(h.map(|h| h.configured_weight))
                    .unwrap_or(real.weight),
            );
            set(
                &b_up,
                &labels,
                i64::from(h.is_none_or(|h| h.health == Health::Up)),
            );
            set(&b_active, &labels, rc.active);
            set(&b_inactive, &labels, rc.inactive);
            add(&b_conns, &labels, rc.conns);
            add(&b_in_bytes, &labels, rc.bytes_in);
            add(&b_out_bytes, &labels, rc.bytes_out);
            add(&b_in_pkts, &labels, rc.packets_in);
            add(&b_out_pkts, &labels, rc.packets_out);
            set(&b_overloaded, &labels, i64::from(real.overloaded));
            set(&b_left_out, &labels, i64::from(real.left_out_ms > 0));
        }
        set(&s_active, &svc, c.active);
        set(&s_inactive, &svc, c.inactive);
    }
    // Checked real servers out of the table (on_down = "remove"): down,
    // weight 0, no traffic.
    for h in &st.health {
        let key = (h.protocol, h.listen, h.real);
        if seen.contains(&key) {
            continue;
        }
        let fwmark = st
            .services
            .iter()
            .find(|s| s.protocol == h.protocol && s.listen == h.listen)
            .and_then(|s| s.fwmark);
        let svc = service_labels(&h.service, h.protocol, h.listen, fwmark);
        let labels = real_labels(&svc, h.real);
        set(&b_weight, &labels, 0);
        set(&b_cweight, &labels, h.configured_weight);
        set(&b_up, &labels, i64::from(h.health == Health::Up));
    }
}

/// Per health check (one per checked real server).
fn checks(r: &mut Reg, st: &Status) {
    let probes = r.counter(
        "halb_check_probes",
        "Probes completed (successes, failures and timeouts) since the check was configured.",
    );
    let failures = r.counter("halb_check_failures", "Probes that failed or timed out.");
    let transitions = r.counter(
        "halb_check_transitions",
        "Up/down transitions of the check.",
    );
    let duration = r.gauge_f64(
        "halb_check_last_duration_seconds",
        "How long the last probe took; absent before the first result.",
    );
    for h in &st.health {
        let fwmark = st
            .services
            .iter()
            .find(|s| s.protocol == h.protocol && s.listen == h.listen)
            .and_then(|s| s.fwmark);
        let svc = service_labels(&h.service, h.protocol, h.listen, fwmark);
        let labels = real_labels(&svc, h.real);
        add(&probes, &labels, h.probes);
        add(&failures, &labels, h.failures);
        add(&transitions, &labels, h.transitions);
        if let Some(ms) = h.last_duration_ms {
            // Milliseconds as seconds: exact in an f64 for any real value.
            #[allow(clippy::cast_precision_loss)]
            set_f64(&duration, &labels, ms as f64 / 1000.0);
        }
    }
    add(
        &r.counter(
            "halb_health_transitions",
            "Real-server health transitions since the daemon started.",
        ),
        &Labels::new(),
        st.health_transitions,
    );
}

/// Per VRRP instance (keepalived-exporter's labels: iname, intf, vrid).
fn vrrp(r: &mut Reg, st: &Status) {
    let state = r.gauge(
        "halb_vrrp_state",
        "The instance's VRRP state: 1 for the current one (INIT, BACKUP, MASTER, FAULT).",
    );
    let prio = r.gauge("halb_vrrp_priority", "The configured priority.");
    let eprio = r.gauge(
        "halb_vrrp_effective_priority",
        "The priority the adverts carry (tracking and takeover applied).",
    );
    let sent = r.counter("halb_vrrp_adverts_sent", "VRRP adverts sent.");
    let rcvd = r.counter(
        "halb_vrrp_adverts_received",
        "VRRP adverts received and accepted.",
    );
    let drops = r.counter(
        "halb_vrrp_dropped",
        "Received VRRP packets dropped, by reason.",
    );
    let master = r.counter(
        "halb_vrrp_become_master",
        "Transitions to MASTER since the instance was created.",
    );
    let mismatch = r.counter(
        "halb_vrrp_address_mismatches",
        "v3 adverts accepted with another address list than ours.",
    );
    let faults = r.gauge(
        "halb_vrrp_faults",
        "Fault reasons in force (tracked links, scripts, ping, resource groups).",
    );
    let takeover = r.gauge("halb_vrrp_takeover", "1 while halb takeover is in force.");
    for v in &st.vrrp {
        let labels = l(&[
            ("iname", v.name.clone()),
            ("intf", v.interface.clone()),
            ("vrid", v.vrid.to_string()),
        ]);
        for s in VRRP_STATES {
            let mut sl = labels.clone();
            sl.push(("state".into(), s.to_owned()));
            set(&state, &sl, i64::from(v.state == s));
        }
        set(&prio, &labels, v.priority);
        set(&eprio, &labels, v.effective_priority);
        add(&sent, &labels, v.adverts_sent);
        add(&rcvd, &labels, v.adverts_received);
        add(&master, &labels, v.became_master);
        add(&mismatch, &labels, v.address_mismatches);
        set(&faults, &labels, v.faults.len());
        set(&takeover, &labels, i64::from(v.takeover));
        for (reason, n) in &v.drops {
            let mut dl = labels.clone();
            dl.push(("reason".into(), reason.clone()));
            add(&drops, &dl, *n);
        }
    }
}

fn state_name(s: halb_resource::State) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{s:?}").to_lowercase())
}

/// Resource groups and their members.
fn resources(r: &mut Reg, st: &Status) {
    let gstate = r.gauge(
        "halb_resource_group_state",
        "The resource group's state: 1 for the current one.",
    );
    let gactive = r.gauge(
        "halb_resource_group_active",
        "1 while the followed VRRP instance (or sync group) is master here.",
    );
    let gmanaged = r.gauge(
        "halb_resource_group_managed",
        "0 while the group is in maintenance (halb maintenance on).",
    );
    let gbanned = r.gauge(
        "halb_resource_group_banned",
        "1 while the group is banned here (given up after migration_threshold failures).",
    );
    let mstate = r.gauge(
        "halb_resource_member_state",
        "The member's state: 1 for the current one.",
    );
    let mfail = r.gauge(
        "halb_resource_member_fail_count",
        "The member's failures counted towards migration_threshold (halb resource cleanup resets it).",
    );
    for g in &st.resources {
        let labels = l(&[("group", g.name.clone()), ("follows", g.follows.clone())]);
        for s in RESOURCE_STATES {
            let mut sl = labels.clone();
            sl.push(("state".into(), state_name(s)));
            set(&gstate, &sl, i64::from(g.state == s));
        }
        set(&gactive, &labels, i64::from(g.active));
        set(&gmanaged, &labels, i64::from(g.managed));
        set(&gbanned, &labels, i64::from(g.ban.is_some()));
        for m in &g.members {
            let ml = l(&[
                ("group", g.name.clone()),
                ("member", m.name.clone()),
                ("agent", m.agent.clone()),
            ]);
            for s in RESOURCE_STATES {
                let mut sl = ml.clone();
                sl.push(("state".into(), state_name(s)));
                set(&mstate, &sl, i64::from(m.state == s));
            }
            set(&mfail, &ml, m.fail_count);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::control::{ConfiguredWeight, OverrideRow, ReloadStats};

    /// `halb list`'s test status (a web service of three real servers,
    /// one of them down, a UDP service, a VRRP instance), with a
    /// resource group, an override, reloads and the sync daemon.
    fn status() -> Status {
        let mut st = crate::list::tests::status();
        st.resources = vec![serde_json::from_value(serde_json::json!({
            "name": "web", "follows": "VI_1", "active": true, "reconfiguring": false,
            "state": "started", "managed": true, "blocked": null, "held_from": null, "ban": null,
            "members": [{"name": "fs", "agent": "ocf:heartbeat:Filesystem", "state": "started",
                         "fail_count": 2, "migration_threshold": 3, "last_failure": null}]
        }))
        .unwrap()];
        st.overrides = vec![OverrideRow {
            service: "web".into(),
            protocol: halb_table::Protocol::Tcp,
            listen: ([127, 0, 0, 1], 8080).into(),
            real: ([127, 0, 0, 1], 18083).into(),
            what: halb_director::overrides::Override::Drain,
        }];
        st.reloads = ReloadStats {
            total: 3,
            failed: 1,
            last_success_unix: Some(1_700_000_000.5),
        };
        st.sync_daemon = Some("backup".into());
        st.config_sync = ["in_sync", "differs", "unknown"]
            .into_iter()
            .enumerate()
            .map(|(i, state)| crate::control::ConfigSyncStatus {
                peer: format!("d{}", i + 2),
                address: ([192, 0, 2, 2], 7947).into(),
                state: state.into(),
                since_unix: None,
                ours: "a".into(),
                theirs: None,
                reason: None,
            })
            .collect();
        st.configured_weights = [18081, 18082, 18083, 18084]
            .into_iter()
            .map(|port| ConfiguredWeight {
                service: "web".into(),
                protocol: halb_table::Protocol::Tcp,
                listen: ([127, 0, 0, 1], 8080).into(),
                real: ([127, 0, 0, 1], port).into(),
                weight: 5,
            })
            .collect();
        st.health[0].probes = 7;
        st.health[0].failures = 2;
        st.health[0].last_duration_ms = Some(1500);
        st
    }

    /// The value of the one sample `name{…}` whose labels include all
    /// of `labels` (`key="value"`).
    fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
        let hits: Vec<f64> = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter(|line| line.split(['{', ' ']).next().is_some_and(|n| n == name))
            .filter(|line| labels.iter().all(|l| line.contains(l)))
            .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
            .collect();
        assert!(hits.len() <= 1, "{name} {labels:?}: {hits:?}\n{text}");
        hits.first().copied()
    }

    const WEB_18081: [&str; 4] = [
        "service=\"web\"",
        "proto=\"TCP\"",
        "local_port=\"8080\"",
        "remote_port=\"18081\"",
    ];

    #[test]
    fn renders_every_part() {
        let t = render_text(&status());
        let one = |name: &str, labels: &[&str]| sample(&t, name, labels);
        // Real servers: node_exporter's labels, weights, health.
        assert_eq!(one("halb_backend_weight", &WEB_18081), Some(1.0));
        assert_eq!(one("halb_backend_configured_weight", &WEB_18081), Some(5.0));
        assert_eq!(one("halb_backend_up", &WEB_18081), Some(1.0));
        assert_eq!(
            one("halb_backend_connections_total", &WEB_18081),
            Some(10.0)
        );
        assert_eq!(
            one("halb_backend_incoming_bytes_total", &WEB_18081),
            Some(800.0)
        );
        assert_eq!(
            one(
                "halb_backend_connections_active",
                &["remote_port=\"18082\""]
            ),
            Some(2.0)
        );
        assert_eq!(
            one("halb_backend_overloaded", &["remote_port=\"18082\""]),
            Some(1.0)
        );
        // Down and out of the table (on_down = "remove").
        assert_eq!(
            one("halb_backend_up", &["remote_port=\"18084\""]),
            Some(0.0)
        );
        assert_eq!(
            one("halb_backend_weight", &["remote_port=\"18084\""]),
            Some(0.0)
        );
        // Service totals.
        assert_eq!(
            one("halb_service_connections_total", &["service=\"web\""]),
            Some(60.0)
        );
        assert_eq!(
            one("halb_service_connections_active", &["service=\"web\""]),
            Some(6.0)
        );
        assert_eq!(
            one(
                "halb_service_incoming_packets_total",
                &["service=\"dns\"", "proto=\"UDP\"", "local_address=\"::1\""]
            ),
            Some(0.0)
        );
        // Checks.
        assert_eq!(one("halb_check_probes_total", &WEB_18081), Some(7.0));
        assert_eq!(one("halb_check_failures_total", &WEB_18081), Some(2.0));
        assert_eq!(one("halb_check_transitions_total", &WEB_18081), Some(1.0));
        assert_eq!(
            one("halb_check_last_duration_seconds", &WEB_18081),
            Some(1.5)
        );
        assert_eq!(one("halb_health_transitions_total", &[]), Some(6.0));
        // VRRP: a labelled state, one of them 1.
        let vi = ["iname=\"VI_1\"", "intf=\"eth0\"", "vrid=\"51\""];
        let state = |s: &str| {
            let mut l = vi.to_vec();
            let want = format!("state=\"{s}\"");
            l.push(&want);
            one("halb_vrrp_state", &l)
        };
        assert_eq!(state("MASTER"), Some(1.0));
        assert_eq!(state("BACKUP"), Some(0.0));
        assert_eq!(state("FAULT"), Some(0.0));
        assert_eq!(one("halb_vrrp_priority", &vi), Some(150.0));
        assert_eq!(one("halb_vrrp_effective_priority", &vi), Some(100.0));
        assert_eq!(one("halb_vrrp_adverts_sent_total", &vi), Some(10.0));
        assert_eq!(one("halb_vrrp_become_master_total", &vi), Some(1.0));
        assert_eq!(
            one("halb_vrrp_dropped_total", &["reason=\"unknown_vrid\""]),
            Some(3.0)
        );
        // Resource groups.
        assert_eq!(
            one(
                "halb_resource_group_state",
                &["group=\"web\"", "state=\"started\""]
            ),
            Some(1.0)
        );
        assert_eq!(
            one(
                "halb_resource_group_state",
                &["group=\"web\"", "state=\"stopped\""]
            ),
            Some(0.0)
        );
        assert_eq!(
            one("halb_resource_member_fail_count", &["member=\"fs\""]),
            Some(2.0)
        );
        // Alerts, sync daemon, reloads, overrides.
        assert_eq!(one("halb_alerts_dropped_total", &[]), Some(0.0));
        assert_eq!(
            one("halb_ipvs_sync_daemon_state", &["state=\"backup\""]),
            Some(1.0)
        );
        assert_eq!(
            one("halb_ipvs_sync_daemon_state", &["state=\"master\""]),
            Some(0.0)
        );
        assert_eq!(one("halb_config_in_sync", &["peer=\"d2\""]), Some(1.0));
        assert_eq!(one("halb_config_in_sync", &["peer=\"d3\""]), Some(0.0));
        assert_eq!(one("halb_config_in_sync", &["peer=\"d4\""]), None);
        assert_eq!(one("halb_reloads_total", &[]), Some(3.0));
        assert_eq!(one("halb_reload_failures_total", &[]), Some(1.0));
        assert_eq!(
            one("halb_last_reload_success_timestamp_seconds", &[]),
            Some(1_700_000_000.5)
        );
        assert_eq!(
            one(
                "halb_backend_override",
                &["remote_port=\"18083\"", "override=\"drain\""]
            ),
            Some(1.0)
        );
        assert_eq!(one("halb_build_info", &["version=\"0.1.0\""]), Some(1.0));
    }

    /// The classic text format: every sample belongs to the family of
    /// the `# TYPE` line before it, counters are named `_total`, and
    /// nothing of OpenMetrics' own is left; OpenMetrics ends with
    /// `# EOF` and names counter families without `_total`.
    #[test]
    fn both_encodings_are_well_formed() {
        let st = status();
        let om = render_openmetrics(&st);
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(om.contains("# TYPE halb_reloads counter\n"), "{om}");
        let t = render_text(&st);
        assert!(!t.contains("# EOF") && !t.contains("# UNIT"), "{t}");
        let mut family: Option<(String, String)> = None;
        let mut helped = std::collections::BTreeSet::new();
        for line in t.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_owned();
                assert!(helped.insert(name), "two HELP lines: {line}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(helped.contains(name), "TYPE without HELP: {line}");
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "{line}");
                }
                family = Some((name.to_owned(), kind.to_owned()));
            } else {
                let (name, _) = family.as_ref().expect("a sample before any TYPE");
                let sample = line.split(['{', ' ']).next().unwrap();
                assert_eq!(sample, name, "{line}");
            }
        }
        // Only the samples' order may differ between the two.
        let samples = |s: &str| {
            let mut v: Vec<String> = s
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_owned)
                .collect();
            v.sort();
            v
        };
        assert_eq!(samples(&om), samples(&t));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut st = status();
        st.services[0].name = "we\"b\\x\ny".into();
        let t = render_text(&st);
        assert!(
            t.contains(r#"halb_service_connections_total{service="we\"b\\x\ny","#),
            "{t}"
        );
    }

    #[test]
    fn an_empty_status_renders() {
        let t = render_text(&Status::default());
        assert_eq!(sample(&t, "halb_reloads_total", &[]), Some(0.0));
        assert_eq!(sample(&t, "halb_backend_up", &[]), None);
        assert_eq!(sample(&t, "halb_ipvs_sync_daemon_state", &[]), None);
        assert_eq!(sample(&t, "halb_quorum", &[]), None);
    }

    #[test]
    fn quorum_is_a_gauge() {
        let mut st = Status::default();
        let mut t =
            halb_quorum::Tracker::new(halb_quorum::Settings::corosync(), std::time::Instant::now());
        st.quorum = Some(t.status());
        assert_eq!(sample(&render_text(&st), "halb_quorum", &[]), Some(0.0));
        let now = std::time::Instant::now() + std::time::Duration::from_secs(3);
        t.handle_event(
            halb_quorum::Event::Notification(halb_quorum::Notification {
                quorate: true,
                ring: None,
                members: vec![1, 2],
                votes: None,
            }),
            now,
        );
        t.handle_timeout(now + halb_quorum::DEFAULT_SETTLE);
        st.quorum = Some(t.status());
        assert_eq!(sample(&render_text(&st), "halb_quorum", &[]), Some(1.0));
    }
}
