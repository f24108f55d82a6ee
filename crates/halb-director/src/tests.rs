//! Unit tests of the director alone (the two-director scenarios are in
//! tests/simulation.rs).

use super::*;
use std::path::Path;

fn config(reals: usize) -> Config {
    let mut src = String::from(
        r#"
[[virtual_service]]
name = "web"
listen = "192.0.2.100:80"
  [virtual_service.check]
  type = "tcp"
  interval = "1s"
  timeout = "500ms"
  rise = 1
  fall = 1
  initial = "down"
"#,
    );
    for i in 0..reals {
        src.push_str(&format!(
            "  [[virtual_service.real_server]]\n  address = \"198.51.100.{}:{}\"\n",
            i % 250 + 1,
            80 + i / 250
        ));
    }
    halb_config::parse(&src, Path::new("t.toml")).unwrap()
}

/// Runs `d` from `from` to `to` in 1 ms steps, answering every probe at
/// once with `up`; returns the health tables handed out, with their time.
fn run(d: &mut Director, from: Instant, to: Instant, up: bool) -> Vec<(Instant, Table)> {
    let mut tables = Vec::new();
    let mut now = from;
    while now <= to {
        d.handle_timeout(now);
        while let Some(a) = d.poll_action() {
            match a {
                Action::StartProbe { probe, .. } => {
                    let o = if up {
                        ProbeOutcome::up("connected")
                    } else {
                        ProbeOutcome::down("refused")
                    };
                    d.handle_probe_result(probe, o, now);
                }
                Action::Apply {
                    table,
                    reason: ApplyReason::Health,
                } => tables.push((now, table)),
                _ => {}
            }
        }
        now += Duration::from_millis(1);
    }
    tables
}

#[test]
fn health_tables_are_coalesced_and_paced_by_their_cost() {
    let t0 = Instant::now();
    let mut d = Director::new(config(500), 1024, t0);
    d.handle_start(t0);
    // 500 real servers come up over the first second (their first probes
    // are spread over the interval, 2 ms apart): far fewer tables than
    // transitions, never two within APPLY_COALESCE.
    let tables = run(&mut d, t0, t0 + Duration::from_millis(1100), true);
    assert_eq!(d.transitions(), 500);
    assert!(tables.len() <= 110, "{} tables", tables.len());
    for w in tables.windows(2) {
        assert!(w[1].0 - w[0].0 >= APPLY_COALESCE);
    }
    assert_eq!(
        tables.last().unwrap().1,
        d.table(),
        "the last table is current"
    );

    // Applying is slow (20 ms, as the shell reports): tables come at
    // least 5 x 20 ms apart while they fall.
    let t1 = t0 + Duration::from_millis(1100);
    let mut now = t1;
    let mut tables = Vec::new();
    while now <= t1 + Duration::from_millis(1200) {
        d.handle_timeout(now);
        while let Some(a) = d.poll_action() {
            match a {
                Action::StartProbe { probe, .. } => {
                    d.handle_probe_result(probe, ProbeOutcome::down("refused"), now)
                }
                Action::Apply {
                    table,
                    reason: ApplyReason::Health,
                } => {
                    tables.push((now, table));
                    d.handle_applied(now + Duration::from_millis(20));
                }
                _ => {}
            }
        }
        now += Duration::from_millis(1);
    }
    assert!(tables.len() >= 2, "{} tables", tables.len());
    for w in tables.windows(2) {
        assert!(
            w[1].0 - w[0].0 >= Duration::from_millis(100),
            "{:?}",
            w[1].0 - w[0].0
        );
    }
    assert_eq!(d.transitions(), 1000);
    let t2 = now + MAX_COALESCE;
    run(&mut d, now, t2, false);
    assert!(d.table().services[0].reals.iter().all(|r| r.weight == 0));
}

#[test]
fn a_reload_table_is_not_held_back() {
    let t0 = Instant::now();
    let mut d = Director::new(config(2), 64, t0);
    d.handle_start(t0);
    run(&mut d, t0, t0 + Duration::from_millis(1100), true);
    let now = t0 + Duration::from_millis(1101);
    let plan = d.handle_config(config(3), now);
    assert!(plan
        .changes
        .iter()
        .any(|c| c.starts_with("web: added real server 198.51.100.3:80")));
    let mut got = false;
    while let Some(a) = d.poll_action() {
        if let Action::Apply {
            reason: ApplyReason::Reload,
            table,
        } = a
        {
            assert_eq!(table.services[0].reals.len(), 3);
            got = true;
        }
    }
    assert!(got, "the reload's table is queued at once");
}

/// A config with one VRRP instance VI_1 (advert 1 s) and a group of two
/// members following it.
fn config_with_group() -> Config {
    let src = r#"
[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = 100
virtual_ipaddress = ["192.0.2.100/24"]
"#;
    let mut c = halb_config::parse(src, Path::new("t.toml")).unwrap();
    use halb_resource::{Agent, Follows, GroupSpec, MemberSpec};
    let member = |n: &str| MemberSpec::new(n, Agent::parse("ocf:heartbeat:Dummy").unwrap());
    let mut g = GroupSpec::new(
        "web",
        Follows::Instance("VI_1".into()),
        vec![member("fs"), member("nginx")],
    );
    g.migration_threshold = 1;
    c.resource_groups = vec![g];
    c
}

fn vrrp(state: halb_vrrp::State) -> VrrpEvent {
    VrrpEvent {
        instance: "VI_1".into(),
        group: None,
        state,
        priority: 100,
        group_settled: true,
        awaiting_peer: false,
    }
}

/// Answers every agent call at once: probes "not running" (7), the rest
/// with `code(op)`; returns the calls made, as "op member", and the other
/// actions.
fn run_agents(
    d: &mut Director,
    now: Instant,
    mut code: impl FnMut(halb_resource::Op, &str) -> i32,
) -> (Vec<String>, Vec<Action>) {
    let mut calls = Vec::new();
    let mut other = Vec::new();
    for _ in 0..100 {
        let Some(a) = d.poll_action() else { break };
        match a {
            Action::RunAgent(halb_resource::Action::Run { id, op, member, .. }) => {
                calls.push(format!("{op} {member}"));
                let c = if op == halb_resource::Op::Probe {
                    7
                } else {
                    code(op, &member)
                };
                d.handle_agent_result(id, halb_resource::AgentResult::code(c), now);
            }
            a => other.push(a),
        }
    }
    (calls, other)
}

#[test]
fn a_group_starts_in_order_on_master_and_stops_in_reverse_on_backup() {
    let t0 = Instant::now();
    let mut d = Director::new(config_with_group(), 16, t0);
    d.handle_start(t0);
    let (calls, _) = run_agents(&mut d, t0, |_, _| 0);
    assert_eq!(calls, ["probe fs", "probe nginx"]);
    // BACKUP at once: nothing is stopped during the start-up grace.
    d.handle_vrrp_event(vrrp(halb_vrrp::State::Backup), t0);
    assert!(run_agents(&mut d, t0, |_, _| 0).0.is_empty());
    let t1 = t0 + Duration::from_secs(1);
    d.handle_vrrp_event(vrrp(halb_vrrp::State::Master), t1);
    let (calls, _) = run_agents(&mut d, t1, |_, _| 0);
    // Becoming master probes the stopped members again, then starts them.
    assert_eq!(
        calls,
        ["probe fs", "probe nginx", "start fs", "start nginx"]
    );
    let st = d.resource_status(t1);
    assert_eq!(st[0].state, halb_resource::State::Started, "{st:?}");
    let t2 = t1 + Duration::from_secs(1);
    d.handle_vrrp_event(vrrp(halb_vrrp::State::Backup), t2);
    let (calls, other) = run_agents(&mut d, t2, |_, _| 0);
    assert_eq!(calls, ["stop nginx", "stop fs"]);
    assert!(
        other
            .iter()
            .any(|a| matches!(a, Action::ResourceReleased { group } if group == "web")),
        "{other:?}"
    );
}

#[test]
fn a_failed_start_gives_the_group_up_with_a_vrrp_fault() {
    let t0 = Instant::now();
    let mut d = Director::new(config_with_group(), 16, t0);
    d.handle_start(t0);
    run_agents(&mut d, t0, |_, _| 0);
    d.handle_vrrp_event(vrrp(halb_vrrp::State::Master), t0);
    // nginx's start fails (OCF_ERR_GENERIC): fs is stopped again, and the
    // instance faults so the peer takes over.
    let (calls, other) = run_agents(&mut d, t0, |op, m| {
        if op == halb_resource::Op::Start && m == "nginx" {
            1
        } else {
            0
        }
    });
    assert_eq!(
        calls[..4],
        ["probe fs", "probe nginx", "start fs", "start nginx"],
        "{calls:?}"
    );
    assert!(calls.contains(&"stop fs".to_owned()), "{calls:?}");
    let fault = other.iter().find_map(|a| match a {
        Action::SetFault {
            instance,
            key,
            faulty: true,
        } => Some((instance.clone(), key.clone())),
        _ => None,
    });
    assert_eq!(
        fault,
        Some(("VI_1".to_owned(), "resource group web".to_owned())),
        "{other:?}"
    );
}

#[test]
fn a_restarted_director_adopts_a_running_group_on_becoming_master_again() {
    let t0 = Instant::now();
    let mut d = Director::new(config_with_group(), 16, t0);
    d.handle_start(t0);
    // Both members run (halb was restarted on the master).
    let mut calls = Vec::new();
    while let Some(a) = d.poll_action() {
        if let Action::RunAgent(halb_resource::Action::Run { id, op, member, .. }) = a {
            calls.push(format!("{op} {member}"));
            d.handle_agent_result(id, halb_resource::AgentResult::code(0), t0);
        }
    }
    assert_eq!(calls, ["probe fs", "probe nginx"]);
    d.handle_vrrp_event(vrrp(halb_vrrp::State::Backup), t0);
    // Within the grace (3 x 1 s advert + 1 s) it becomes master: no start,
    // no stop.
    let t1 = t0 + Duration::from_secs(3);
    d.handle_timeout(t1);
    d.handle_vrrp_event(vrrp(halb_vrrp::State::Master), t1);
    let (calls, _) = run_agents(&mut d, t1, |_, _| 0);
    assert!(
        calls
            .iter()
            .all(|c| !c.starts_with("start") && !c.starts_with("stop")),
        "{calls:?}"
    );
    assert_eq!(
        d.resource_status(t1)[0].state,
        halb_resource::State::Started
    );
}

/// Like [`run_agents`], one ordered log: "op member" for agent calls,
/// "fault KEY" / "clear KEY" for VRRP faults; a stop answers `stop_code`.
fn run_log(d: &mut Director, now: Instant, stop_code: i32) -> Vec<String> {
    let mut log = Vec::new();
    for _ in 0..100 {
        let Some(a) = d.poll_action() else { break };
        match a {
            Action::RunAgent(halb_resource::Action::Run { id, op, member, .. }) => {
                log.push(format!("{op} {member}"));
                let c = match op {
                    halb_resource::Op::Probe => 7,
                    halb_resource::Op::Stop => stop_code,
                    _ => 0,
                };
                d.handle_agent_result(id, halb_resource::AgentResult::code(c), now);
            }
            Action::SetFault { key, faulty, .. } => {
                log.push(format!("{} {key}", if faulty { "fault" } else { "clear" }))
            }
            _ => {}
        }
    }
    log
}

#[test]
fn standby_on_the_master_stops_its_groups_before_the_vip_goes() {
    let t0 = Instant::now();
    let mut d = Director::new(config_with_group(), 16, t0);
    d.handle_start(t0);
    run_log(&mut d, t0, 0);
    d.handle_vrrp_event(vrrp(halb_vrrp::State::Master), t0);
    let log = run_log(&mut d, t0, 0);
    assert_eq!(log[2..], ["start fs", "start nginx"], "{log:?}");
    d.handle_command(Command::Standby(true), t0).unwrap();
    // Held while the group runs: the stops come first, then the fault
    // (the priority-0 advert, the VIP removed) once nothing runs.
    let log = run_log(&mut d, t0, 0);
    assert_eq!(
        log,
        ["stop nginx", "stop fs", &format!("fault {STANDBY_FAULT}")]
    );
    assert_eq!(d.resources.held().count(), 0);
    // VRRP went to FAULT: nothing starts; online clears the fault.
    d.handle_vrrp_event(vrrp(halb_vrrp::State::Fault), t0);
    d.handle_command(Command::Standby(false), t0).unwrap();
    let log = run_log(&mut d, t0, 0);
    assert_eq!(log, [format!("clear {STANDBY_FAULT}")]);
}

#[test]
fn a_failed_stop_keeps_the_fault_held_and_the_vip_here() {
    let t0 = Instant::now();
    let mut d = Director::new(config_with_group(), 16, t0);
    d.handle_start(t0);
    run_log(&mut d, t0, 0);
    d.handle_vrrp_event(vrrp(halb_vrrp::State::Master), t0);
    run_log(&mut d, t0, 0);
    d.handle_command(Command::Standby(true), t0).unwrap();
    // nginx's stop fails: the group is blocked (nginx may still run), so
    // the peer must not start it: no fault goes out.
    let log = run_log(&mut d, t0, 1);
    assert_eq!(log, ["stop nginx"], "{log:?}");
    assert_eq!(
        d.resources.held_for(&d.config.clone(), "VI_1"),
        ["web".to_owned()]
    );
    // Online before it went out: the held fault is dropped, no clear
    // needed but harmless.
    d.handle_command(Command::Standby(false), t0).unwrap();
    let log = run_log(&mut d, t0, 0);
    assert!(log.iter().all(|l| !l.starts_with("fault")), "{log:?}");
    assert_eq!(d.resources.held().count(), 0);
}

#[test]
fn a_fault_on_a_backup_is_not_held() {
    let t0 = Instant::now();
    let mut d = Director::new(config_with_group(), 16, t0);
    d.handle_start(t0);
    run_log(&mut d, t0, 0);
    d.handle_vrrp_event(vrrp(halb_vrrp::State::Backup), t0);
    d.handle_command(Command::Standby(true), t0).unwrap();
    let log = run_log(&mut d, t0, 0);
    assert_eq!(log, [format!("fault {STANDBY_FAULT}")]);
}

#[test]
fn resource_events_are_alerted_to_the_groups_sinks() {
    use halb_alert::{ResourceAlert, Subject};
    let t0 = Instant::now();
    let mut c = config_with_group();
    c.resource_groups[0].migration_threshold = 2;
    let hook = halb_alert::WebhookSpec {
        url: halb_alert::WebhookUrl::parse("http://127.0.0.1:1/h").unwrap(),
        timeout: Duration::from_secs(1),
        retries: 0,
        ca_file: None,
    };
    c.resource_alerts = vec![(
        "web".into(),
        halb_alert::AlertSpec {
            webhook: Some(hook),
            email: None,
        },
    )];
    let mut d = Director::new(c, 16, t0);
    d.handle_start(t0);
    run_agents(&mut d, t0, |_, _| 0);
    d.handle_vrrp_event(vrrp(halb_vrrp::State::Master), t0);
    let events = |other: &[Action]| -> Vec<(Option<String>, ResourceAlert)> {
        other
            .iter()
            .filter_map(|a| match a {
                Action::Alert(a) => match &a.alert.subject {
                    Subject::Resource { member, event, .. } => Some((member.clone(), *event)),
                    Subject::RealServer { .. }
                    | Subject::VrrpPath { .. }
                    | Subject::ConfigSync { .. }
                    | Subject::Quorum { .. } => None,
                },
                _ => None,
            })
            .collect()
    };
    let (_, other) = run_agents(&mut d, t0, |_, _| 0);
    assert_eq!(
        events(&other),
        [(None, ResourceAlert::Started)],
        "only the last member's start makes the group's alert"
    );
    // nginx's monitor fails: failed, then restarted in place.
    let t1 = t0 + Duration::from_secs(10);
    d.handle_timeout(t1);
    let (_, other) = run_agents(&mut d, t1, |op, m| {
        i32::from(op == halb_resource::Op::Monitor && m == "nginx") * 7
    });
    let nginx = Some("nginx".to_owned());
    assert_eq!(
        events(&other),
        [
            (nginx.clone(), ResourceAlert::Failed),
            (nginx.clone(), ResourceAlert::Restarted)
        ],
        "{other:?}"
    );
    // Again: the threshold (2) is reached, the group is given up.
    let t2 = t1 + Duration::from_secs(10);
    d.handle_timeout(t2);
    let (_, other) = run_agents(&mut d, t2, |op, m| {
        i32::from(op == halb_resource::Op::Monitor && m == "nginx") * 7
    });
    assert_eq!(
        events(&other),
        [
            (nginx.clone(), ResourceAlert::Failed),
            (None, ResourceAlert::GivenUp)
        ],
        "{other:?}"
    );
    // A stop that fails on the way out: blocked, alerted.
    let mut c = config_with_group();
    c.resource_alerts = vec![(
        "web".into(),
        halb_alert::AlertSpec {
            webhook: Some(halb_alert::WebhookSpec {
                url: halb_alert::WebhookUrl::parse("http://127.0.0.1:1/h").unwrap(),
                timeout: Duration::from_secs(1),
                retries: 0,
                ca_file: None,
            }),
            email: None,
        },
    )];
    let mut d = Director::new(c, 16, t0);
    d.handle_start(t0);
    run_agents(&mut d, t0, |_, _| 0);
    d.handle_vrrp_event(vrrp(halb_vrrp::State::Master), t0);
    run_agents(&mut d, t0, |_, _| 0);
    d.handle_vrrp_event(vrrp(halb_vrrp::State::Backup), t1);
    let (_, other) = run_agents(&mut d, t1, |op, _| i32::from(op == halb_resource::Op::Stop));
    assert!(
        events(&other).contains(&(nginx, ResourceAlert::Blocked)),
        "{other:?}"
    );
}

/// A started director whose `[global.alert]` has a webhook, its start's
/// actions drained.
fn with_global_webhook(t0: Instant) -> Director {
    let mut c = config(1);
    c.vrrp_alert = halb_alert::AlertSpec {
        webhook: Some(halb_alert::WebhookSpec {
            url: halb_alert::WebhookUrl::parse("http://127.0.0.1:1/h").unwrap(),
            timeout: Duration::from_secs(1),
            retries: 0,
            ca_file: None,
        }),
        email: None,
    };
    let mut d = Director::new(c, 16, t0);
    d.handle_start(t0);
    while d.poll_action().is_some() {}
    d
}

/// A VRRP path that dies is alerted to `[global.alert]`, and so is its
/// healing (even after a master spell where it was unknown); a path that
/// comes alive at startup is not.
#[test]
fn vrrp_path_dead_and_healed_are_alerted() {
    use halb_vrrp::PathState::{Alive, Dead, Unknown};
    let t0 = Instant::now();
    let mut d = with_global_webhook(t0);
    let path = |d: &mut Director, from, to| {
        d.handle_vrrp_path(
            VrrpPathEvent {
                instance: "VI_1".into(),
                interface: "eth1".into(),
                peer: Some("198.51.100.2".parse().unwrap()),
                from,
                to,
            },
            t0,
        );
        std::iter::from_fn(|| d.poll_action())
            .filter_map(|a| match a {
                Action::Alert(a) => match a.alert.subject {
                    halb_alert::Subject::VrrpPath { event, .. } => Some(event),
                    _ => None,
                },
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(path(&mut d, Unknown, Alive).is_empty());
    assert_eq!(path(&mut d, Alive, Dead), [halb_alert::PathAlert::Dead]);
    assert!(path(&mut d, Dead, Unknown).is_empty());
    assert_eq!(path(&mut d, Unknown, Alive), [halb_alert::PathAlert::Alive]);
    assert!(path(&mut d, Alive, Unknown).is_empty());
    assert!(path(&mut d, Unknown, Alive).is_empty());
}

/// A sync peer's config differing is alerted once, and its return to the
/// same config once; an unchanged state is not alerted again.
#[test]
fn config_drift_and_its_end_are_alerted_once() {
    let t0 = Instant::now();
    let mut d = with_global_webhook(t0);
    let sync = |d: &mut Director, in_sync: bool| {
        d.handle_config_sync("d2", in_sync, "config differs from d2".into(), t0);
        std::iter::from_fn(|| d.poll_action())
            .filter_map(|a| match a {
                Action::Alert(a) => match a.alert.subject {
                    halb_alert::Subject::ConfigSync { event, peer } => {
                        assert_eq!(peer, "d2");
                        Some(event)
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(sync(&mut d, true).is_empty());
    assert_eq!(sync(&mut d, false), [halb_alert::SyncAlert::Differs]);
    assert!(sync(&mut d, false).is_empty());
    assert_eq!(sync(&mut d, true), [halb_alert::SyncAlert::InSync]);
    assert!(sync(&mut d, true).is_empty());
}

#[test]
fn an_ipvs_fallback_joins_the_table_while_no_real_server_is_up() {
    let src = r#"
[[virtual_service]]
name = "mail"
data_plane = "ipvs"
listen = "192.0.2.100:25"
on_down = "quiescent"
fallback = "198.51.100.50:25"
fallback_forward = "masq"
  [[virtual_service.real_server]]
  address = "198.51.100.21:25"
  forward = "masq"
  [[virtual_service.real_server]]
  address = "198.51.100.22:25"
  forward = "masq"
[[virtual_service]]
name = "web"
listen = "192.0.2.100:80"
fallback = "198.51.100.50:80"
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"
"#;
    let c = halb_config::parse(src, Path::new("t.toml")).unwrap();
    let r21: SocketAddr = "198.51.100.21:25".parse().unwrap();
    let fb: SocketAddr = "198.51.100.50:25".parse().unwrap();
    let reals = |t: &Table, i: usize| -> Vec<(SocketAddr, u32, halb_table::Forward)> {
        t.services[i]
            .reals
            .iter()
            .map(|r| (r.addr, r.weight, r.forward))
            .collect()
    };
    // One up: no fallback.
    let t = effective_table(&c, |_, a| {
        Some((if a == r21 { Health::Up } else { Health::Down }, None))
    });
    assert!(
        !reals(&t, 0).iter().any(|r| r.0 == fb),
        "{:?}",
        reals(&t, 0)
    );
    // All down (quiescent, at weight 0): the fallback, weight 1, masq.
    let t = effective_table(&c, |_, _| Some((Health::Down, None)));
    let r = reals(&t, 0);
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(r.contains(&(fb, 1, halb_table::Forward::Masq)), "{r:?}");
    assert!(r.iter().filter(|x| x.0 != fb).all(|x| x.1 == 0), "{r:?}");
    // The proxy service keeps its fallback to itself.
    let fb80: SocketAddr = "198.51.100.50:80".parse().unwrap();
    assert!(
        !reals(&t, 1).iter().any(|r| r.0 == fb80),
        "{:?}",
        reals(&t, 1)
    );
}

fn with_quorum(settle_ms: u64, policy: halb_quorum::NoQuorumPolicy) -> Config {
    let mut c = config_with_group();
    c.global.quorum = Some(halb_quorum::Settings {
        settle: Duration::from_millis(settle_ms),
        no_quorum_policy: policy,
        ..halb_quorum::Settings::corosync()
    });
    c
}

fn quorate(q: bool, members: &[u32]) -> halb_quorum::Event {
    let n = members.len() as u32;
    halb_quorum::Event::Notification(halb_quorum::Notification {
        quorate: q,
        ring: Some(halb_quorum::Ring { node: 1, seq: 4 }),
        members: members.to_vec(),
        votes: Some(halb_quorum::Votes {
            have: n,
            expected: 3,
            needed: 2,
        }),
    })
}

#[test]
fn without_quorum_the_groups_stop_then_every_instance_faults() {
    use halb_quorum::NoQuorumPolicy;
    let t0 = Instant::now();
    let mut d = Director::new(with_quorum(0, NoQuorumPolicy::Stop), 16, t0);
    d.handle_start(t0);
    // Nothing is known at the start: the fault goes out with the start.
    let log = run_log(&mut d, t0, 0);
    assert!(log.contains(&format!("fault {QUORUM_FAULT}")), "{log:?}");
    assert_eq!(
        d.quorum_status().unwrap().summary,
        "no quorum (corosync: not connected yet)"
    );
    d.handle_quorum(halb_quorum::Event::Connected, t0);
    d.handle_quorum(quorate(true, &[1, 2, 3]), t0);
    assert_eq!(run_log(&mut d, t0, 0), [format!("clear {QUORUM_FAULT}")]);
    d.handle_vrrp_event(vrrp(halb_vrrp::State::Master), t0);
    let log = run_log(&mut d, t0, 0);
    assert!(
        log.ends_with(&["start fs".to_owned(), "start nginx".to_owned()]),
        "{log:?}"
    );
    // Cut off alone: the stops first, then the fault (priority 0, VIP
    // removed) once nothing runs.
    d.handle_quorum(quorate(false, &[1]), t0);
    let log = run_log(&mut d, t0, 0);
    assert_eq!(
        log,
        ["stop nginx", "stop fs", &format!("fault {QUORUM_FAULT}")]
    );
    let s = d.quorum_status().unwrap();
    assert_eq!(s.summary, "no quorum (corosync: 1 of 3 votes)");
    assert!(!s.may_hold);
    // Healed: the fault clears, nothing else.
    d.handle_vrrp_event(vrrp(halb_vrrp::State::Fault), t0);
    d.handle_quorum(quorate(true, &[1, 2, 3]), t0);
    assert_eq!(run_log(&mut d, t0, 0), [format!("clear {QUORUM_FAULT}")]);
}

#[test]
fn regained_quorum_waits_for_the_settle_time() {
    use halb_quorum::NoQuorumPolicy;
    let t0 = Instant::now();
    let mut d = Director::new(with_quorum(2000, NoQuorumPolicy::Stop), 16, t0);
    d.handle_start(t0);
    run_log(&mut d, t0, 0);
    d.handle_quorum(quorate(true, &[1, 2]), t0);
    assert!(run_log(&mut d, t0, 0).is_empty());
    assert!(d.poll_timeout().unwrap() <= t0 + Duration::from_secs(2));
    assert!(d
        .quorum_status()
        .unwrap()
        .summary
        .starts_with("quorate, settling for 2s"));
    // Lost again before it settled: nothing was cleared, nothing to set.
    d.handle_quorum(quorate(false, &[1]), t0 + Duration::from_secs(1));
    assert!(run_log(&mut d, t0, 0).is_empty());
    d.handle_quorum(quorate(true, &[1, 2]), t0 + Duration::from_secs(3));
    d.handle_timeout(t0 + Duration::from_secs(5));
    assert_eq!(
        run_log(&mut d, t0 + Duration::from_secs(5), 0),
        [format!("clear {QUORUM_FAULT}")]
    );
}

#[test]
fn quorum_changes_are_alerted_and_ignore_sets_no_fault() {
    use halb_quorum::NoQuorumPolicy;
    let t0 = Instant::now();
    let mut c = with_quorum(0, NoQuorumPolicy::Ignore);
    c.vrrp_alert = halb_alert::AlertSpec {
        webhook: Some(halb_alert::WebhookSpec {
            url: halb_alert::WebhookUrl::parse("http://127.0.0.1:1/h").unwrap(),
            timeout: Duration::from_secs(1),
            retries: 0,
            ca_file: None,
        }),
        email: None,
    };
    let mut d = Director::new(c, 16, t0);
    d.handle_start(t0);
    let mut events = Vec::new();
    let mut faults = 0;
    let mut drain = |d: &mut Director, events: &mut Vec<_>| {
        while let Some(a) = d.poll_action() {
            match a {
                Action::Alert(a) => {
                    if let halb_alert::Subject::Quorum { event } = a.alert.subject {
                        events.push((event, a.alert.reason));
                    }
                }
                Action::SetFault { key, .. } if key == QUORUM_FAULT => faults += 1,
                _ => {}
            }
        }
    };
    drain(&mut d, &mut events);
    d.handle_quorum(quorate(true, &[1, 2, 3]), t0);
    d.handle_quorum(
        halb_quorum::Event::Lost {
            reason: "corosync connection lost".into(),
        },
        t0,
    );
    drain(&mut d, &mut events);
    assert_eq!(faults, 0);
    let kinds: Vec<_> = events.iter().map(|(e, _)| *e).collect();
    assert_eq!(
        kinds,
        [
            halb_alert::QuorumAlert::Regained,
            halb_alert::QuorumAlert::Lost
        ]
    );
    assert!(
        events[1]
            .1
            .contains("not connected: corosync connection lost"),
        "{events:?}"
    );
}

#[test]
fn a_real_servers_own_on_down_wins_over_its_services() {
    let src = r#"
[[virtual_service]]
name = "web"
data_plane = "ipvs"
listen = "192.0.2.100:80"
on_down = "remove"
  [virtual_service.check]
  type = "tcp"
  [[virtual_service.real_server]]
  address = "198.51.100.21:80"
  forward = "masq"
  [[virtual_service.real_server]]
  address = "198.51.100.22:80"
  forward = "masq"
  on_down = "quiescent"
"#;
    let c = halb_config::parse(src, Path::new("t.toml")).unwrap();
    let t = effective_table(&c, |_, _| Some((Health::Down, None)));
    let r: Vec<(String, u32)> = t.services[0]
        .reals
        .iter()
        .map(|r| (r.addr.to_string(), r.weight))
        .collect();
    assert_eq!(r, vec![("198.51.100.22:80".to_owned(), 0)]);
}
