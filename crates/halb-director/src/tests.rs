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
