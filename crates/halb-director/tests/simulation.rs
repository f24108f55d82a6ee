//! The whole director in virtual time: two directors, each a
//! [`Director`] with the real health engine and a VRRP [`Router`] from
//! halb-vrrp, on a simulated LAN, probing simulated real servers, with a
//! fake data plane that records every table it is given. No sockets, no
//! clock: the same run gives the same result every time.
//!
//! Scenarios: every real server of a tracked service dies on the master
//! → its priority drops → the peer takes over and its table carries the
//! traffic; a reload during a run of transitions; a flapping check with
//! rise/fall; alerts while starting and reloading; the sync daemon's role
//! following VRRP. Properties over random event sequences: the table
//! applied always equals the pure function of (config, health); a reload
//! the config parser rejects changes nothing.

#![allow(clippy::unwrap_used)]

use halb_config::{Config, SyncRole};
use halb_director::{effective_table, Action, ApplyReason, Command, Director, VrrpEvent};
use halb_health::{Health, ProbeId, ProbeOutcome};
use halb_table::Table;
use halb_vrrp::{Action as VrrpAction, Advert, Router, State};
use proptest::prelude::*;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

const LATENCY: Duration = Duration::from_millis(1);
const PROBE_TIME: Duration = Duration::from_millis(3);
/// A resource agent's start and stop (a mount, a database's shutdown).
const START_TIME: Duration = Duration::from_millis(400);
const STOP_TIME: Duration = Duration::from_millis(1500);

/// A shared disk and the database on it, following VI_1.
const GROUP: &str = r#"
[[resource_group]]
name = "data"
follows = "VI_1"
  [[resource_group.member]]
  name = "disk"
  agent = "ocf:heartbeat:Dummy"
  monitor = { interval = "1s", timeout = "5s" }
  [[resource_group.member]]
  name = "db"
  agent = "ocf:heartbeat:Dummy"
  monitor = { interval = "1s", timeout = "5s" }
"#;

fn config(priority: u8, reals: &[&str], extra: &str) -> String {
    let mut s = String::from(
        r#"
[global.ipvs.sync_daemon]
vrrp_instance = "VI_1"
interface = "eth0"
sync_id = 51

[[virtual_service]]
name = "web"
listen = "192.0.2.100:80"
scheduler = "rr"
  [virtual_service.check]
  type = "tcp"
  interval = "1s"
  timeout = "500ms"
  rise = 2
  fall = 2
  initial = "down"
  [virtual_service.alert]
  webhook = "http://127.0.0.1:9/hook"
"#,
    );
    for r in reals {
        s.push_str(&format!(
            "  [[virtual_service.real_server]]\n  address = \"{r}\"\n"
        ));
    }
    s.push_str(&format!(
        r#"
[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = {priority}
advert_interval = "100ms"
virtual_ipaddress = ["192.0.2.100/24"]
track_service = [{{ service = "web", weight = -100 }}]
notify_master = "/etc/halb/notify.sh master"
{extra}
"#
    ));
    s
}

fn parse(src: &str) -> Config {
    match halb_config::parse(src, Path::new("sim.toml")) {
        Ok(c) => c,
        Err(e) => panic!("{}", e.render()),
    }
}

/// One director: its core, its VRRP router, and what its shell saw.
struct Node {
    director: Director,
    router: Router,
    primary: IpAddr,
    faults: BTreeSet<String>,
    /// Every table applied, with the time and reason.
    tables: Vec<(Duration, ApplyReason, Table)>,
    sync_roles: Vec<SyncRole>,
    hooks: Vec<Vec<String>>,
    /// Alerts with the time they were decided.
    alerts: Vec<(Duration, halb_alert::Action)>,
    vips: bool,
    /// Probe results due: (when, probe, outcome).
    probes: Vec<(Instant, ProbeId, ProbeOutcome)>,
    /// Resource members running on this node (its "disk" and daemons).
    running: BTreeSet<String>,
    /// Agent calls in progress: (when they end, id, op, member).
    agents: Vec<(Instant, halb_resource::OpId, halb_resource::Op, String)>,
}

impl Node {
    fn table(&self) -> &Table {
        &self.tables.last().unwrap().2
    }
}

struct World {
    t0: Instant,
    now: Instant,
    nodes: Vec<Node>,
    /// Real servers that answer probes.
    alive: HashSet<SocketAddr>,
    /// Adverts in flight: (when, to node, from address, advert).
    lan: Vec<(Instant, usize, IpAddr, Advert)>,
    /// When a resource member ran on both nodes at once (must stay empty).
    both_ran: Vec<(Duration, String)>,
}

impl World {
    fn new(configs: &[String], alive: &[&str]) -> World {
        let t0 = Instant::now();
        let nodes = configs
            .iter()
            .enumerate()
            .map(|(i, src)| {
                let c = parse(src);
                let primary: IpAddr = format!("192.0.2.{}", i + 1).parse().unwrap();
                let v = &c.vrrp_instances[0];
                let mut rc = halb_vrrp::router::Config::new(
                    v.virtual_router_id,
                    v.priority,
                    primary,
                    vec!["192.0.2.100".parse().unwrap()],
                );
                rc.advert_interval = v.advert_interval;
                let router = Router::new(rc).unwrap();
                let mut director = Director::new(c, 64, t0);
                let table = director.table();
                director.handle_start(t0);
                Node {
                    director,
                    router,
                    primary,
                    faults: BTreeSet::new(),
                    tables: vec![(Duration::ZERO, ApplyReason::Health, table)],
                    sync_roles: Vec::new(),
                    hooks: Vec::new(),
                    alerts: Vec::new(),
                    vips: false,
                    probes: Vec::new(),
                    running: BTreeSet::new(),
                    agents: Vec::new(),
                }
            })
            .collect();
        let mut w = World {
            t0,
            now: t0,
            nodes,
            alive: alive.iter().map(|a| a.parse().unwrap()).collect(),
            lan: Vec::new(),
            both_ran: Vec::new(),
        };
        for n in &mut w.nodes {
            n.router.start(t0);
        }
        w.settle();
        w
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Carries out every action of every node until all are quiet.
    fn settle(&mut self) {
        loop {
            let mut busy = false;
            for i in 0..self.nodes.len() {
                busy |= self.drain(i);
            }
            if !busy {
                return;
            }
        }
    }

    fn drain(&mut self, i: usize) -> bool {
        let mut busy = false;
        let now = self.now;
        let elapsed = self.elapsed();
        loop {
            let mut any = false;
            while let Some(a) = self.nodes[i].director.poll_action() {
                any = true;
                let alive = self.alive.contains(&probe_target(&a));
                let n = &mut self.nodes[i];
                match a {
                    Action::StartProbe { probe, spec } => {
                        let outcome = if alive {
                            ProbeOutcome::up("connected")
                        } else {
                            ProbeOutcome::down(format!("connect to {}: refused", spec.target))
                        };
                        n.probes.push((now + PROBE_TIME, probe, outcome));
                    }
                    Action::Apply { table, reason } => n.tables.push((elapsed, reason, table)),
                    Action::SetPriorityDelta { delta, .. } => n.router.set_priority_delta(delta),
                    Action::SetTakeover { on, .. } => {
                        n.router.set_takeover(on, now);
                    }
                    Action::SetReleasing { on, .. } => n.router.set_releasing(on, now),
                    Action::SetFault { key, faulty, .. } => {
                        if faulty {
                            n.faults.insert(key);
                        } else {
                            n.faults.remove(&key);
                        }
                        if n.faults.is_empty() && !n.router.is_link_up() {
                            n.router.link_up(now);
                        } else if !n.faults.is_empty() && n.router.is_link_up() {
                            n.router.link_down(now);
                        }
                    }
                    Action::SetSyncRole(r) => n.sync_roles.push(r),
                    Action::RunHook { argv, .. } => n.hooks.push(argv),
                    Action::Alert(a) => n.alerts.push((elapsed, a)),
                    Action::SetGlobal(_) | Action::ReloadVrrp(_) => {}
                    Action::RunAgent(halb_resource::Action::Run { id, op, member, .. }) => {
                        let took = match op {
                            halb_resource::Op::Start => START_TIME,
                            halb_resource::Op::Stop => STOP_TIME,
                            _ => PROBE_TIME,
                        };
                        n.agents.push((now + took, id, op, member));
                    }
                    Action::RunAgent(_)
                    | Action::ResourceEvent(_)
                    | Action::ResourceReleased { .. } => {}
                }
            }
            while let Some(a) = self.nodes[i].router.poll_action() {
                any = true;
                let n = &mut self.nodes[i];
                match a {
                    VrrpAction::SendAdvert(adv) => {
                        let from = n.primary;
                        for to in 0..self.nodes.len() {
                            if to != i {
                                self.lan.push((now + LATENCY, to, from, adv.clone()));
                            }
                        }
                    }
                    VrrpAction::AddAddresses { .. } => n.vips = true,
                    VrrpAction::RemoveAddresses { .. } => n.vips = false,
                    VrrpAction::SendGratuitous { .. } | VrrpAction::PathChange { .. } => {}
                    VrrpAction::PeerReleased => {
                        let priority = n.router.priority();
                        n.director.handle_vrrp_event(
                            VrrpEvent {
                                instance: "VI_1".into(),
                                group: None,
                                state: State::Master,
                                priority,
                                group_settled: false,
                                awaiting_peer: false,
                            },
                            now,
                        );
                    }
                    VrrpAction::StateChange { to, .. } => {
                        let priority = n.router.priority();
                        n.director.handle_vrrp_event(
                            VrrpEvent {
                                instance: "VI_1".into(),
                                group: None,
                                state: to,
                                priority,
                                group_settled: false,
                                awaiting_peer: n.router.awaiting_peer(),
                            },
                            now,
                        );
                    }
                }
            }
            if !any {
                return busy;
            }
            busy = true;
        }
    }

    /// The next time anything happens.
    fn next_event(&mut self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut take = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        for n in &mut self.nodes {
            take(n.director.poll_timeout());
            take(n.router.poll_timeout());
            take(n.probes.iter().map(|p| p.0).min());
            take(n.agents.iter().map(|a| a.0).min());
        }
        take(self.lan.iter().map(|l| l.0).min());
        t
    }

    /// Runs the world until `until` (virtual time since the start).
    fn run_until(&mut self, until: Duration) {
        let end = self.t0 + until;
        while let Some(t) = self.next_event() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.step();
        }
        self.now = end;
        self.step();
    }

    /// Everything due at `now`.
    fn step(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = self.lan.drain(..).partition(|l| l.0 <= now);
        self.lan = later;
        for (_, to, from, adv) in due {
            self.nodes[to].router.handle_advert(from, &adv, now);
        }
        for n in &mut self.nodes {
            let (due, later): (Vec<_>, Vec<_>) = n.probes.drain(..).partition(|p| p.0 <= now);
            n.probes = later;
            for (_, probe, outcome) in due {
                n.director.handle_probe_result(probe, outcome, now);
            }
            let (due, later): (Vec<_>, Vec<_>) = n.agents.drain(..).partition(|a| a.0 <= now);
            n.agents = later;
            for (_, id, op, member) in due {
                // A start runs the member from its end, a stop until it.
                let code = match op {
                    halb_resource::Op::Start => {
                        n.running.insert(member);
                        0
                    }
                    halb_resource::Op::Stop => {
                        n.running.remove(&member);
                        0
                    }
                    _ if n.running.contains(&member) => 0,
                    _ => 7,
                };
                n.director
                    .handle_agent_result(id, halb_resource::AgentResult::code(code), now);
            }
            if n.director.poll_timeout().is_some_and(|t| t <= now) {
                n.director.handle_timeout(now);
            }
            if n.router.poll_timeout().is_some_and(|t| t <= now) {
                n.router.handle_timeout(now);
            }
        }
        self.settle();
        // A member starting counts as running from the call (a mount in
        // progress writes the disk): both nodes must never hold one.
        let held = |n: &Node, m: &str| {
            n.running.contains(m)
                || n.agents
                    .iter()
                    .any(|a| a.3 == m && a.2 == halb_resource::Op::Start)
        };
        for m in ["disk", "db"] {
            if self.nodes.len() == 2 && held(&self.nodes[0], m) && held(&self.nodes[1], m) {
                self.both_ran.push((self.elapsed(), m.to_owned()));
            }
        }
    }

    /// The table each node applied last (once a coalesced one is out)
    /// equals the pure function of its config and its engine's health.
    fn check_tables(&mut self) {
        let t = self.elapsed();
        self.run_until(t + halb_director::APPLY_COALESCE);
        for (i, n) in self.nodes.iter().enumerate() {
            assert_eq!(
                n.table(),
                &n.director.table(),
                "node {i}'s last table is stale"
            );
            let health: HashMap<SocketAddr, Health> = n
                .director
                .health_report()
                .into_iter()
                .map(|h| (h.real, h.health))
                .collect();
            let expected = effective_table(n.director.config(), |_, real| {
                health.get(&real).map(|h| (*h, None))
            });
            assert_eq!(n.table(), &expected, "node {i}");
        }
    }

    fn state(&self, i: usize) -> State {
        self.nodes[i].router.state()
    }
}

fn probe_target(a: &Action) -> SocketAddr {
    match a {
        Action::StartProbe { spec, .. } => spec.target,
        _ => SocketAddr::from(([0, 0, 0, 0], 0)),
    }
}

fn weights(t: &Table) -> Vec<(u16, u32)> {
    t.services[0]
        .reals
        .iter()
        .map(|r| (r.addr.port(), r.weight))
        .collect()
}

const REALS: [&str; 2] = ["198.51.100.1:80", "198.51.100.2:80"];

#[test]
fn master_whose_service_dies_hands_over_and_the_peer_carries_the_traffic() {
    let mut w = World::new(&[config(150, &REALS, ""), config(100, &REALS, "")], &REALS);
    w.run_until(Duration::from_secs(5));
    assert_eq!(w.state(0), State::Master);
    assert_eq!(w.state(1), State::Backup);
    assert!(w.nodes[0].vips && !w.nodes[1].vips);
    assert_eq!(weights(w.nodes[0].table()), [(80, 1), (80, 1)]);
    assert_eq!(w.nodes[0].sync_roles.last(), Some(&SyncRole::Master));
    assert_eq!(w.nodes[1].sync_roles.last(), Some(&SyncRole::Backup));
    assert!(w.nodes[0]
        .hooks
        .contains(&vec!["/etc/halb/notify.sh".to_owned(), "master".to_owned()]));
    w.check_tables();

    // Director 0 loses its path to every real server (director 1 still
    // reaches them): simulated by director 0's probes failing alone.
    // Here both directors probe the same world, so kill the servers and
    // bring them back for director 1 only by giving it other reals.
    let mut w = World::new(
        &[
            config(150, &REALS, ""),
            config(100, &["198.51.100.3:80", "198.51.100.4:80"], ""),
        ],
        &[REALS[0], REALS[1], "198.51.100.3:80", "198.51.100.4:80"],
    );
    w.run_until(Duration::from_secs(5));
    assert_eq!(w.state(0), State::Master);
    w.alive
        .retain(|a| a.ip().to_string() != "198.51.100.1" && a.ip().to_string() != "198.51.100.2");
    let died = w.elapsed();
    w.run_until(died + Duration::from_secs(4));
    // fall 2 at 1 s: down within 2 s + timeout; then priority 50 < 100.
    assert_eq!(w.nodes[0].router.priority(), 50);
    assert_eq!(
        w.state(0),
        State::Backup,
        "the master with a dead service steps down"
    );
    assert_eq!(w.state(1), State::Master);
    assert!(w.nodes[1].vips && !w.nodes[0].vips);
    assert_eq!(weights(w.nodes[0].table()), [(80, 0), (80, 0)]);
    assert_eq!(weights(w.nodes[1].table()), [(80, 1), (80, 1)]);
    assert_eq!(w.nodes[0].sync_roles.last(), Some(&SyncRole::Backup));
    assert_eq!(w.nodes[1].sync_roles.last(), Some(&SyncRole::Master));
    w.check_tables();

    // They return: priority 150 again, director 0 preempts.
    w.alive.insert(REALS[0].parse().unwrap());
    let back = w.elapsed();
    w.run_until(back + Duration::from_secs(4));
    assert_eq!(w.nodes[0].router.priority(), 150);
    assert_eq!(w.state(0), State::Master);
    assert_eq!(w.state(1), State::Backup);
    assert_eq!(weights(w.nodes[0].table()), [(80, 1), (80, 0)]);
    w.check_tables();
}

#[test]
fn takeover_and_standby_move_the_master_and_hold_until_online() {
    let mut w = World::new(&[config(150, &REALS, ""), config(100, &REALS, "")], &REALS);
    w.run_until(Duration::from_secs(5));
    assert_eq!(w.state(0), State::Master);
    let cmd = |w: &mut World, i: usize, c: Command| {
        let now = w.now;
        let r = w.nodes[i].director.handle_command(c, now);
        w.settle();
        r
    };
    // An unknown instance: refused, with the valid names.
    let e = cmd(&mut w, 1, Command::Takeover(Some("VI_9".into()))).unwrap_err();
    assert!(e.to_string().contains("VI_1"), "{e}");
    // The backup takes over: master now, the old master steps down on the
    // first advert at 254, and stays down although it preempts.
    cmd(&mut w, 1, Command::Takeover(None)).unwrap();
    assert_eq!(w.state(1), State::Master);
    assert_eq!(w.nodes[1].router.priority(), 254);
    let t = w.elapsed();
    w.run_until(t + Duration::from_millis(50));
    assert_eq!(w.state(0), State::Backup);
    assert!(w.nodes[1].vips && !w.nodes[0].vips);
    w.run_until(t + Duration::from_secs(3));
    assert_eq!(w.state(0), State::Backup, "the old master took it back");
    assert_eq!(w.nodes[1].sync_roles.last(), Some(&SyncRole::Master));
    // Standby and takeover exclude each other: standby on the taker ends
    // its takeover and gives the VIP back.
    cmd(&mut w, 1, Command::Standby(true)).unwrap();
    assert!(w.nodes[1].director.role_override().takeover().is_empty());
    let t = w.elapsed();
    w.run_until(t + Duration::from_secs(2));
    assert_eq!(w.state(0), State::Master);
    assert_eq!(w.state(1), State::Fault);
    let e = cmd(&mut w, 1, Command::Takeover(None)).unwrap_err();
    assert!(e.to_string().contains("halb online"), "{e}");
    // Online: back as backup (100 < 150).
    cmd(&mut w, 1, Command::Standby(false)).unwrap();
    let t = w.elapsed();
    w.run_until(t + Duration::from_secs(2));
    assert_eq!(w.state(1), State::Backup);
    assert_eq!(w.state(0), State::Master);
    // Takeover again, then online: the configured priorities decide and
    // the preempting 150 takes the VIP back.
    cmd(&mut w, 1, Command::Takeover(Some("VI_1".into()))).unwrap();
    let t = w.elapsed();
    w.run_until(t + Duration::from_millis(500));
    assert_eq!(w.state(1), State::Master);
    assert_eq!(w.state(0), State::Backup);
    cmd(&mut w, 1, Command::Standby(false)).unwrap();
    assert_eq!(w.nodes[1].router.priority(), 100);
    let t = w.elapsed();
    w.run_until(t + Duration::from_secs(2));
    assert_eq!(w.state(0), State::Master);
    assert_eq!(w.state(1), State::Backup);
    assert!(w.nodes[0].vips && !w.nodes[1].vips);
    w.check_tables();
}

fn where_data_runs(w: &World) -> Vec<usize> {
    (0..2)
        .filter(|&i| w.nodes[i].running.contains("disk") && w.nodes[i].running.contains("db"))
        .collect()
}

#[test]
fn a_group_moves_by_standby_preemption_and_takeover_and_never_runs_twice() {
    let c0 = config(150, &REALS, "") + GROUP;
    let c1 = config(100, &REALS, "") + GROUP;
    let mut w = World::new(&[c0, c1], &REALS);
    w.run_until(Duration::from_secs(8));
    assert_eq!(w.state(0), State::Master);
    assert_eq!(where_data_runs(&w), [0]);
    let cmd = |w: &mut World, i: usize, c: Command| {
        let now = w.now;
        w.nodes[i].director.handle_command(c, now).unwrap();
        w.settle();
    };
    // Standby on the master: it stops its group, then releases; the peer
    // starts it.
    cmd(&mut w, 0, Command::Standby(true));
    let t = w.elapsed();
    w.run_until(t + Duration::from_millis(500));
    assert_eq!(w.state(0), State::Master, "the VIP waits for the stops");
    w.run_until(t + Duration::from_secs(8));
    assert_eq!(w.state(1), State::Master);
    assert_eq!(where_data_runs(&w), [1]);
    // Online: the 150 preempts the 100 at once, and waits while the 100
    // stops its group (releasing adverts), then starts it.
    cmd(&mut w, 0, Command::Standby(false));
    let t = w.elapsed();
    w.run_until(t + Duration::from_secs(5));
    assert_eq!(w.state(0), State::Master);
    assert_eq!(w.state(1), State::Backup);
    w.run_until(t + Duration::from_secs(10));
    assert_eq!(where_data_runs(&w), [0]);
    assert!(!w.nodes[0].director.resource_status(w.now).is_empty());
    // A takeover by the 100: the same hand-over the other way.
    cmd(&mut w, 1, Command::Takeover(None));
    let t = w.elapsed();
    w.run_until(t + Duration::from_secs(10));
    assert_eq!(w.state(1), State::Master);
    assert_eq!(where_data_runs(&w), [1]);
    assert!(w.both_ran.is_empty(), "ran on both: {:?}", w.both_ran);
}

#[test]
fn a_flapping_check_moves_only_after_rise_and_fall() {
    let mut w = World::new(&[config(150, &REALS, "")], &REALS);
    w.run_until(Duration::from_secs(4));
    assert_eq!(weights(w.nodes[0].table()), [(80, 1), (80, 1)]);
    let applied = w.nodes[0].tables.len();
    // Down for one probe, up for one, down for one: fall 2 never reached.
    let r: SocketAddr = REALS[1].parse().unwrap();
    for _ in 0..3 {
        w.alive.remove(&r);
        let t = w.elapsed();
        w.run_until(t + Duration::from_secs(1));
        w.alive.insert(r);
        let t = w.elapsed();
        w.run_until(t + Duration::from_secs(1));
    }
    assert_eq!(
        w.nodes[0].tables.len(),
        applied,
        "no table for a flap under fall"
    );
    assert_eq!(
        w.nodes[0].director.transitions(),
        2,
        "only the two first rises"
    );
    // Down for good: one transition, one table.
    w.alive.remove(&r);
    let t = w.elapsed();
    w.run_until(t + Duration::from_secs(3));
    assert_eq!(weights(w.nodes[0].table()), [(80, 1), (80, 0)]);
    assert_eq!(w.nodes[0].tables.len(), applied + 1);
    w.check_tables();
}

#[test]
fn alerts_say_starting_then_running_then_reloading() {
    let mut w = World::new(&[config(150, &REALS, "")], &[REALS[0]]);
    w.run_until(Duration::from_secs(5));
    // The first round: REALS[0] comes up while starting (initial down,
    // rise 2); REALS[1] never answers, stays down: no transition.
    let statuses: Vec<_> = w.nodes[0]
        .alerts
        .iter()
        .map(|(t, a)| {
            let (real, to) = real_to(&a.alert);
            (*t, real.to_string(), to, a.alert.status)
        })
        .collect();
    assert!(!statuses.is_empty(), "the up transition is alerted");
    // Starting lasts the first round (interval + timeout = 1.5 s), then
    // running; each alert says which it was decided in.
    for (t, real, to, status) in &statuses {
        assert_eq!(real, REALS[0]);
        assert_eq!(*to, Health::Up);
        let expected = if *t < Duration::from_millis(1500) {
            halb_alert::DaemonStatus::Starting
        } else {
            halb_alert::DaemonStatus::Running
        };
        assert_eq!(*status, expected, "alert at {t:?}");
    }

    // REALS[0] dies; after its first failed probe (fall 2), a reload
    // (VRRP changed, the check did not: it keeps its count): the second
    // failure lands in the reload's first round, and its alert says so.
    w.alive.clear();
    let t = w.elapsed();
    w.run_until(t + Duration::from_millis(1050));
    assert_eq!(w.nodes[0].alerts.len(), statuses.len(), "not down yet");
    let new = parse(&config(150, &REALS, "preempt = false"));
    let reload_at = w.elapsed();
    let plan = w.nodes[0].director.handle_config(new, w.now);
    assert!(plan.vrrp, "a VRRP change restarts VRRP");
    w.settle();
    let t = w.elapsed();
    w.run_until(t + Duration::from_millis(1400));
    let (t, last) = w.nodes[0].alerts.last().unwrap();
    assert!(*t < reload_at + Duration::from_millis(1500));
    assert_eq!(real_to(&last.alert).1, Health::Down);
    assert_eq!(last.alert.status, halb_alert::DaemonStatus::Reloading);
    // After the reload's first round: running again.
    w.alive.insert(REALS[0].parse().unwrap());
    let t = w.elapsed();
    w.run_until(t + Duration::from_secs(4));
    let (_, last) = w.nodes[0].alerts.last().unwrap();
    assert_eq!(real_to(&last.alert).1, Health::Up);
    assert_eq!(last.alert.status, halb_alert::DaemonStatus::Running);
    w.check_tables();
}

#[test]
fn a_reload_during_transitions_keeps_health_and_applies_once() {
    let mut w = World::new(&[config(150, &REALS, "")], &REALS);
    w.run_until(Duration::from_secs(4));
    let before = w.nodes[0].director.transitions();
    // One real server dies; halfway through its fall count, a reload
    // changes a weight and adds a real server.
    w.alive.remove(&REALS[1].parse().unwrap());
    let t = w.elapsed();
    w.run_until(t + Duration::from_millis(1200));
    let src = config(150, &REALS, "").replace(
        "  address = \"198.51.100.1:80\"\n",
        "  address = \"198.51.100.1:80\"\n  weight = 5\n",
    );
    let src = src.replace(
        "\n[[vrrp_instance]]",
        "  [[virtual_service.real_server]]\n  address = \"198.51.100.3:80\"\n\n[[vrrp_instance]]",
    );
    let plan = w.nodes[0].director.handle_config(parse(&src), w.now);
    assert!(!plan.vrrp);
    assert!(
        plan.changes
            .iter()
            .any(|c| c == "web: real server 198.51.100.1:80 weight 1 -> 5"),
        "{:?}",
        plan.changes
    );
    assert!(plan
        .changes
        .iter()
        .any(|c| c.starts_with("web: added real server 198.51.100.3:80")));
    let applied = w.nodes[0].tables.len();
    w.settle();
    assert_eq!(
        w.nodes[0].tables.len(),
        applied + 1,
        "one table for the reload"
    );
    assert_eq!(w.nodes[0].tables.last().unwrap().1, ApplyReason::Reload);
    // Kept checks kept their state: the first is up at weight 5 at once;
    // the new one starts down.
    assert_eq!(weights(w.nodes[0].table()), [(80, 5), (80, 1), (80, 0)]);
    let t = w.elapsed();
    w.run_until(t + Duration::from_secs(3));
    // The dying one finished its fall count across the reload.
    assert_eq!(weights(w.nodes[0].table()), [(80, 5), (80, 0), (80, 0)]);
    assert_eq!(w.nodes[0].director.transitions(), before + 1);
    w.check_tables();
}

#[test]
fn track_script_and_ping_are_engine_checks_with_rise_and_fall() {
    let extra = r#"
track_ping = { hosts = ["203.0.113.1", "203.0.113.2"], interval = "1s", timeout = "500ms", fall = 2, rise = 2 }
  [[vrrp_instance.track_script]]
  name = "chk"
  command = "/usr/local/bin/chk"
  interval = "1s"
  timeout = "500ms"
  weight = -60
"#;
    let mut w = World::new(
        &[config(150, &REALS, extra)],
        &[
            REALS[0],
            REALS[1],
            "203.0.113.1:0",
            "203.0.113.2:0",
            "0.0.0.0:0",
        ],
    );
    w.run_until(Duration::from_secs(4));
    assert_eq!(w.state(0), State::Master);
    assert_eq!(w.nodes[0].router.priority(), 150);
    // One ping node down: the other answers, no Fault.
    w.alive.remove(&"203.0.113.1:0".parse().unwrap());
    let t = w.elapsed();
    w.run_until(t + Duration::from_secs(4));
    assert_eq!(w.state(0), State::Master);
    // Both: Fault after fall.
    w.alive.remove(&"203.0.113.2:0".parse().unwrap());
    let t = w.elapsed();
    w.run_until(t + Duration::from_secs(4));
    assert_eq!(w.state(0), State::Fault);
    assert!(w.nodes[0].faults.contains("ping nodes unreachable"));
    // One back: after rise 2, out of Fault.
    w.alive.insert("203.0.113.2:0".parse().unwrap());
    let t = w.elapsed();
    w.run_until(t + Duration::from_secs(4));
    assert!(w.nodes[0].faults.is_empty());
    assert_ne!(w.state(0), State::Fault);
    // The script fails (its target is the unspecified address): its
    // first failure lowers the priority (it starts up, the first result
    // decides).
    w.alive.remove(&"0.0.0.0:0".parse().unwrap());
    let t = w.elapsed();
    w.run_until(t + Duration::from_millis(1600));
    assert_eq!(w.nodes[0].router.priority(), 90);
    w.check_tables();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random deaths, returns, time steps and reloads (valid and
    /// invalid): the table applied always equals the pure function of
    /// (config, health); a rejected reload changes nothing.
    #[test]
    fn tables_follow_config_and_health(ops in proptest::collection::vec((0u8..5, 0usize..3, 1u64..2500), 1..40)) {
        let reals = ["198.51.100.1:80", "198.51.100.2:80", "198.51.100.3:80"];
        let mut w = World::new(&[config(150, &reals, "")], &reals);
        for (op, which, ms) in ops {
            let r: SocketAddr = reals[which].parse().unwrap();
            match op {
                0 => { w.alive.remove(&r); }
                1 => { w.alive.insert(r); }
                2 => {
                    let keep: Vec<&str> = reals.iter().copied().filter(|x| *x != reals[which]).collect();
                    let new = parse(&config(150, &keep, ""));
                    w.nodes[0].director.handle_config(new, w.now);
                    w.settle();
                }
                3 => {
                    // A config the parser rejects never reaches the
                    // director: nothing changes.
                    let before = w.nodes[0].director.table();
                    let bad = config(150, &reals, "").replace("priority = 150", "priority = 999");
                    prop_assert!(halb_config::parse(&bad, Path::new("bad.toml")).is_err());
                    prop_assert_eq!(w.nodes[0].director.table(), before);
                }
                _ => {
                    let new = parse(&config(150, &reals, ""));
                    w.nodes[0].director.handle_config(new, w.now);
                    w.settle();
                }
            }
            let t = w.elapsed();
            w.run_until(t + Duration::from_millis(ms));
            w.check_tables();
        }
    }
}

/// A real server's alert: (the real server, its new state).
fn real_to(a: &halb_alert::Alert) -> (std::net::SocketAddr, Health) {
    match &a.subject {
        halb_alert::Subject::RealServer { real, to, .. } => (*real, *to),
        other => panic!("not a real server's alert: {other:?}"),
    }
}
