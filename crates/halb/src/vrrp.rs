//! VRRP in the daemon: the config turned into the shell's spec, the
//! trackers (scripts, ping nodes, virtual service health) feeding
//! priorities and faults, and the notify hooks (keepalived's argument
//! order). The VRRP thread itself is `halb_vrrp_net`.

use crate::control::{HealthState, RealHealth, VrrpStatus};
use halb_config::{Config, Notify, TrackPing, TrackScript, VrrpAuth, VrrpInstance};
use halb_vrrp::State;
use halb_vrrp_net::{Event, GarpSpec, GroupSpec, InstanceSpec, Spec, VipSpec, VrrpHandle};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Each instance's latest state, for what follows VRRP roles (the IPVS
/// sync daemon).
pub type Roles = watch::Sender<HashMap<String, State>>;

/// The shell's spec for `config`.
pub fn spec(config: &Config) -> anyhow::Result<Spec> {
    Ok(Spec {
        instances: config
            .vrrp_instances
            .iter()
            .map(instance_spec)
            .collect::<anyhow::Result<_>>()?,
        groups: config
            .vrrp_sync_groups
            .iter()
            .map(|g| GroupSpec {
                name: g.name.clone(),
                instances: g.instances.clone(),
            })
            .collect(),
    })
}

fn instance_spec(v: &VrrpInstance) -> anyhow::Result<InstanceSpec> {
    Ok(InstanceSpec {
        name: v.name.clone(),
        interface: v.interface.clone(),
        vrid: v.virtual_router_id,
        version: if v.version == 2 {
            halb_vrrp::Version::V2
        } else {
            halb_vrrp::Version::V3
        },
        priority: v.priority,
        advert_interval: v.advert_interval,
        preempt: v.preempt,
        preempt_delay: v.preempt_delay,
        accept: v.accept,
        vips: v
            .virtual_ipaddress
            .iter()
            .map(|x| VipSpec {
                address: x.address,
                prefix_len: x.prefix_len,
                interface: x.interface.clone(),
                label: x.label.clone(),
            })
            .collect(),
        unicast_source: v.unicast_source,
        unicast_peers: v.unicast_peers.clone(),
        auth: match &v.auth {
            VrrpAuth::None => halb_vrrp::Auth::None,
            VrrpAuth::Pass(p) => halb_vrrp::Auth::password(p),
            VrrpAuth::HmacSha256 { .. } => halb_vrrp::Auth::None,
        },
        hmac: match &v.auth {
            VrrpAuth::HmacSha256 { key, replay_window } => Some((key.clone(), *replay_window)),
            _ => None,
        },
        garp: GarpSpec {
            count: v.garp.count,
            interval: v.garp.interval,
            delay: v.garp.delay,
            refresh: v.garp.refresh,
        },
        track_interfaces: v.track_interface.clone(),
        vip_on_loopback_when_backup: v.vip_on_loopback_when_backup,
    })
}

/// VRRP as the daemon runs it.
pub struct Running {
    pub handle: Arc<VrrpHandle>,
    pub deltas: Deltas,
    trackers: Vec<JoinHandle<()>>,
    notify: JoinHandle<()>,
    shared: Arc<Mutex<Config>>,
}

impl Running {
    /// Starts the VRRP thread, trackers and hooks if `config` has
    /// instances. Call within the daemon's runtime.
    pub fn start(config: &Config, roles: &Roles) -> anyhow::Result<Option<Running>> {
        if config.vrrp_instances.is_empty() {
            return Ok(None);
        }
        let (handle, events) = halb_vrrp_net::spawn(spec(config)?)?;
        let handle = Arc::new(handle);
        let deltas = Deltas::new(handle.clone());
        let shared = Arc::new(Mutex::new(config.clone()));
        let notify = spawn_notify(shared.clone(), events, roles.clone());
        let trackers = spawn_trackers(config, &deltas);
        tracing::info!("VRRP: {} instance(s) started", config.vrrp_instances.len());
        Ok(Some(Running {
            handle,
            deltas,
            trackers,
            notify,
            shared,
        }))
    }

    /// Applies a reloaded config.
    pub fn reload(&mut self, config: &Config) -> anyhow::Result<()> {
        let spec = spec(config)?;
        self.handle.reload_detached(spec);
        for t in self.trackers.drain(..) {
            t.abort();
        }
        if let Ok(mut d) = self.deltas.by_instance.lock() {
            d.clear();
        }
        // The new trackers start "up": faults of the old ones are cleared.
        let old: Vec<(String, String)> = self
            .deltas
            .faults
            .lock()
            .map(|mut f| f.drain().collect())
            .unwrap_or_default();
        for (instance, key) in old {
            self.handle.set_fault(&instance, &key, false);
        }
        for v in &config.vrrp_instances {
            self.handle.set_priority_delta(&v.name, 0);
        }
        self.trackers = spawn_trackers(config, &self.deltas);
        if let Ok(mut c) = self.shared.lock() {
            *c = config.clone();
        }
        Ok(())
    }

    /// Releases every instance and waits for the stop hooks to start.
    pub async fn stop(self) {
        for t in &self.trackers {
            t.abort();
        }
        self.handle.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.notify).await;
    }
}

/// The status rows for `halb list`.
pub fn status(handle: &VrrpHandle) -> Vec<VrrpStatus> {
    handle
        .status()
        .into_iter()
        .map(|s| VrrpStatus {
            name: s.name,
            interface: s.interface,
            vrid: s.vrid,
            version: s.version,
            state: s.state.to_owned(),
            priority: s.priority,
            effective_priority: s.effective_priority,
            master: s.master,
            vips: s.vips,
            group: s.group,
            faults: s.faults,
            adverts_sent: s.adverts_sent,
            adverts_received: s.adverts_received,
            address_mismatches: s.address_mismatches,
            drops: s.drops,
        })
        .collect()
}

/// Priority deltas from several trackers, summed per instance.
#[derive(Clone)]
pub struct Deltas {
    handle: Arc<VrrpHandle>,
    by_instance: Arc<Mutex<HashMap<String, BTreeMap<String, i32>>>>,
    /// Faults set by trackers (instance, key), cleared on reload.
    faults: Arc<Mutex<std::collections::HashSet<(String, String)>>>,
}

impl Deltas {
    pub fn new(handle: Arc<VrrpHandle>) -> Deltas {
        Deltas {
            handle,
            by_instance: Arc::default(),
            faults: Arc::default(),
        }
    }

    /// Tracker `key` of `instance` now contributes `delta`.
    fn set(&self, instance: &str, key: &str, delta: i32) {
        let Ok(mut m) = self.by_instance.lock() else {
            return;
        };
        let e = m.entry(instance.to_owned()).or_default();
        if e.get(key).copied().unwrap_or(0) == delta {
            return;
        }
        e.insert(key.to_owned(), delta);
        let sum: i32 = e.values().sum();
        self.handle.set_priority_delta(instance, sum);
    }

    /// A tracker's result, with keepalived's weights: 0 makes failing a
    /// fault; a negative weight lowers the priority by |weight| while
    /// failing; a positive one raises it by weight while succeeding.
    fn report(&self, instance: &str, key: &str, weight: i32, failing: bool) {
        if weight == 0 {
            if let Ok(mut f) = self.faults.lock() {
                let k = (instance.to_owned(), key.to_owned());
                if failing {
                    f.insert(k);
                } else {
                    f.remove(&k);
                }
            }
            self.handle.set_fault(instance, key, failing);
        } else {
            self.set(instance, key, tracked_delta(weight, failing));
        }
    }
}

/// The priority change of a weighted tracker (keepalived's semantics).
fn tracked_delta(weight: i32, failing: bool) -> i32 {
    match (weight < 0, failing) {
        (true, true) | (false, false) => weight,
        _ => 0,
    }
}

/// `track_service`: for each instance, the services all of whose checked
/// real servers are down.
pub fn apply_track_service(config: &Config, health: &[RealHealth], deltas: &Deltas) {
    for v in &config.vrrp_instances {
        for t in &v.track_service {
            let Some(vs) = config.services.iter().find(|s| s.name == t.service) else {
                continue;
            };
            let down = !vs.reals.is_empty()
                && vs.reals.iter().all(|r| {
                    health.iter().any(|h| {
                        h.service == vs.name && h.real == r.addr && h.health == HealthState::Down
                    })
                });
            deltas.report(
                &v.name,
                &format!("service {} down", t.service),
                t.weight,
                down,
            );
        }
    }
}

/// Starts the script and ping trackers of `config`.
pub fn spawn_trackers(config: &Config, deltas: &Deltas) -> Vec<JoinHandle<()>> {
    let mut out = Vec::new();
    for v in &config.vrrp_instances {
        for s in &v.track_script {
            out.push(tokio::spawn(script_loop(
                v.name.clone(),
                s.clone(),
                deltas.clone(),
            )));
        }
        if let Some(p) = &v.track_ping {
            out.push(tokio::spawn(ping_loop(
                v.name.clone(),
                p.clone(),
                deltas.clone(),
            )));
        }
    }
    out
}

/// rise/fall counting; `Some(new_up)` on a flip.
struct RiseFall {
    up: bool,
    run: u32,
}

impl RiseFall {
    fn feed(&mut self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        if ok == self.up {
            self.run = 0;
            return None;
        }
        self.run += 1;
        if self.run >= if ok { rise } else { fall } {
            self.up = ok;
            self.run = 0;
            Some(ok)
        } else {
            None
        }
    }
}

async fn script_loop(instance: String, s: TrackScript, deltas: Deltas) {
    let key = format!("script {} failing", s.name);
    let mut rf = RiseFall { up: true, run: 0 };
    let mut tick = tokio::time::interval(s.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first result sets the state at once (keepalived's scripts start
    // in an init state): a positive weight that is never failed is
    // counted from the start.
    let mut first = true;
    loop {
        tick.tick().await;
        let ok = run_script(&s).await;
        if std::mem::take(&mut first) {
            rf.up = ok;
            if !ok {
                tracing::warn!(%instance, script = %s.name, weight = s.weight, "track_script fails");
            }
            deltas.report(&instance, &key, s.weight, !ok);
            continue;
        }
        if let Some(up) = rf.feed(ok, s.rise, s.fall) {
            if up {
                tracing::info!(%instance, script = %s.name, "track_script succeeds again");
            } else {
                tracing::warn!(%instance, script = %s.name, weight = s.weight, "track_script fails");
            }
            deltas.report(&instance, &key, s.weight, !up);
        }
    }
}

async fn run_script(s: &TrackScript) -> bool {
    let Some((prog, args)) = s.command.split_first() else {
        return false;
    };
    let child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    match tokio::time::timeout(s.timeout, child.wait()).await {
        Ok(Ok(st)) => st.success(),
        _ => false,
    }
}

async fn ping_loop(instance: String, p: TrackPing, deltas: Deltas) {
    let key = "ping nodes unreachable".to_owned();
    let mut rf = RiseFall { up: true, run: 0 };
    let mut tick = tokio::time::interval(p.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u16 = 0;
    loop {
        tick.tick().await;
        seq = seq.wrapping_add(1);
        let mut any = false;
        for h in &p.hosts {
            let (h, t, s) = (*h, p.timeout, seq);
            let ok = tokio::task::spawn_blocking(move || ping::echo(h, t, s))
                .await
                .unwrap_or(false);
            if ok {
                any = true;
                break;
            }
        }
        if let Some(up) = rf.feed(any, p.rise, p.fall) {
            if up {
                tracing::info!(%instance, "ping nodes reachable again");
            } else {
                tracing::warn!(%instance, hosts = ?p.hosts, "no ping node answers: Fault");
            }
            // Ping nodes (heartbeat's ipfail) always mean Fault.
            deltas.report(&instance, &key, 0, !up);
        }
    }
}

/// ICMP echo: an unprivileged ping socket (`ping_group_range`) if the
/// kernel allows it, else a raw socket (root).
mod ping {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    use std::io::Read;
    use std::net::{IpAddr, SocketAddr};
    use std::time::{Duration, Instant};

    fn checksum(b: &[u8]) -> u16 {
        let mut sum = 0u32;
        for c in b.chunks(2) {
            let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
            sum += u32::from(w);
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    pub fn echo(host: IpAddr, timeout: Duration, seq: u16) -> bool {
        let (domain, proto, req_type, rep_type) = match host {
            IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4, 8u8, 0u8),
            IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6, 128u8, 129u8),
        };
        let (sock, raw) = match Socket::new(domain, Type::DGRAM, Some(proto)) {
            Ok(s) => (s, false),
            Err(_) => match Socket::new(domain, Type::RAW, Some(proto)) {
                Ok(s) => (s, true),
                Err(_) => return false,
            },
        };
        let id = (std::process::id() & 0xffff) as u16;
        let mut msg = vec![req_type, 0, 0, 0];
        msg.extend_from_slice(&id.to_be_bytes());
        msg.extend_from_slice(&seq.to_be_bytes());
        msg.extend_from_slice(b"halb-track-ping");
        if host.is_ipv4() {
            let c = checksum(&msg);
            msg[2..4].copy_from_slice(&c.to_be_bytes());
        }
        if sock
            .send_to(&msg, &SockAddr::from(SocketAddr::new(host, 0)))
            .is_err()
        {
            return false;
        }
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 1500];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || sock.set_read_timeout(Some(left)).is_err() {
                return false;
            }
            let mut r: &Socket = &sock;
            let Ok(n) = r.read(&mut buf) else {
                return false;
            };
            let mut p = buf.get(..n).unwrap_or(&[]);
            if raw && host.is_ipv4() {
                let ihl = usize::from(p.first().map_or(0, |b| b & 0x0f)) * 4;
                let src = p
                    .get(12..16)
                    .map(|s| IpAddr::from([s[0], s[1], s[2], s[3]]));
                if src != Some(host) {
                    continue;
                }
                p = p.get(ihl..).unwrap_or(&[]);
            }
            // Ping sockets rewrite the id; raw ones keep ours.
            if p.len() >= 8
                && p[0] == rep_type
                && (!raw || p[4..6] == id.to_be_bytes())
                && p[6..8] == seq.to_be_bytes()
            {
                return true;
            }
        }
    }
}

/// Runs the notify hooks for VRRP events until the channel closes.
pub fn spawn_notify(
    config: Arc<Mutex<Config>>,
    mut events: mpsc::UnboundedReceiver<Event>,
    roles: Roles,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            roles.send_modify(|r| {
                r.insert(ev.instance.clone(), ev.state);
            });
            let cmds = match config.lock() {
                Ok(c) => hooks_for(&c, &ev),
                Err(_) => return,
            };
            for argv in cmds {
                run_hook(argv);
            }
        }
    })
}

/// keepalived's state words.
fn word(s: State) -> &'static str {
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
pub fn hooks_for(config: &Config, ev: &Event) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    if let Some(v) = config.vrrp_instances.iter().find(|v| v.name == ev.instance) {
        if let Some(c) = pick(&v.notify, ev.state) {
            out.push(c.clone());
        }
        if let Some(c) = &v.notify.any {
            let mut c = c.clone();
            c.extend([
                "INSTANCE".to_owned(),
                v.name.clone(),
                word(ev.state).to_owned(),
                ev.priority.to_string(),
            ]);
            out.push(c);
        }
    }
    if let (Some(g), true) = (&ev.group, ev.group_settled) {
        if let Some(g) = config.vrrp_sync_groups.iter().find(|x| &x.name == g) {
            if let Some(c) = pick(&g.notify, ev.state) {
                out.push(c.clone());
            }
            if let Some(c) = &g.notify.any {
                let mut c = c.clone();
                c.extend([
                    "GROUP".to_owned(),
                    g.name.clone(),
                    word(ev.state).to_owned(),
                    // keepalived passes 4 arguments for groups too; a
                    // group has no priority of its own: 0.
                    "0".to_owned(),
                ]);
                out.push(c);
            }
        }
    }
    out
}

fn run_hook(argv: Vec<String>) {
    let Some((prog, args)) = argv.split_first() else {
        return;
    };
    match tokio::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        Err(e) => tracing::error!(hook = %prog, error = %e, "notify hook did not start"),
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
        .unwrap()
    }

    #[test]
    fn hooks_follow_keepalived_argument_order() {
        let ev = Event {
            instance: "VI_1".into(),
            group: Some("G1".into()),
            state: State::Master,
            priority: 150,
            group_settled: true,
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
        let stop = Event {
            state: State::Initialize,
            group_settled: false,
            ..ev
        };
        assert_eq!(
            hooks_for(&cfg(), &stop),
            vec![["/etc/halb/notify.sh", "INSTANCE", "VI_1", "STOP", "150"]
                .map(String::from)
                .to_vec()]
        );
    }

    /// keepalived: `weight -20` lowers the priority by 20 while failing,
    /// `weight 20` raises it by 20 while the check succeeds.
    #[test]
    fn weights_as_keepalived() {
        assert_eq!(tracked_delta(-20, true), -20);
        assert_eq!(tracked_delta(-20, false), 0);
        assert_eq!(tracked_delta(20, false), 20);
        assert_eq!(tracked_delta(20, true), 0);
    }

    #[test]
    fn rise_fall() {
        let mut rf = RiseFall { up: true, run: 0 };
        assert_eq!(rf.feed(false, 2, 2), None);
        assert_eq!(rf.feed(false, 2, 2), Some(false));
        assert_eq!(rf.feed(true, 2, 2), None);
        assert_eq!(rf.feed(false, 2, 2), None);
        assert_eq!(rf.feed(true, 2, 2), None);
        assert_eq!(rf.feed(true, 2, 2), Some(true));
    }

    #[test]
    fn ping_loopback() {
        // Needs either ping_group_range or root; otherwise echo is false.
        let ok = ping::echo("127.0.0.1".parse().unwrap(), Duration::from_secs(1), 1);
        let allowed = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
            .map(|s| {
                let v: Vec<i64> = s
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                v.len() == 2 && v[0] <= v[1]
            })
            .unwrap_or(false);
        if allowed || nix::unistd::geteuid().is_root() {
            assert!(ok);
        } else {
            println!("SKIPPED: neither a ping socket nor a raw socket is allowed");
        }
    }
}
