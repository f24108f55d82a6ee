//! Health checks in the daemon: numbering the configured checks for the
//! engine (`halb_health::drive`), following its transitions, and the
//! *effective* table: the config's table with health applied.
//!
//! [`Checks`] is sans-IO. It mirrors what the engine does with a check
//! set (see `halb_health::engine`): checks with equal specs share one
//! state; a check keeps its state across [`Checks::set`] when its service,
//! real server and spec are unchanged (it keeps its [`CheckId`], so the
//! engine keeps its slot); a check that joins the spec of a kept one
//! inherits that state; every other check starts at its initial state.
//! A check whose spec changed gets a new id, so late events of the old
//! probe cannot touch it.
//!
//! A real server without a check is always up: it keeps its configured
//! weight.
//!
//! [`Recording`] wraps the prober: it notes each probe's result in
//! [`LastResults`], so `halb list` shows why a real server is down (or up)
//! from the first probe on, before any transition, without a round trip
//! through the engine.

use crate::control::{HealthState, RealHealth};
use halb_config::Config;
use halb_health::probe::BoxFuture;
use halb_health::{
    CheckId, CheckSpec, Event, Health, InitialState, ProbeOutcome, ProbeSpec, Prober,
};
use halb_table::{OnDown, ServiceKey, Table};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The reason of the last finished probe of each probe slot, shared
/// between the prober that writes it and the report that reads it.
///
/// Keyed by the address of the slot's `Arc<CheckSpec>` (unique while the
/// entry holds that `Arc`): a record happens once per probe, 10,000 times
/// a second at scale, and hashing a pointer costs nothing next to hashing
/// and comparing a whole spec (that was ~9% of the control thread in
/// bench/health-bench). The report, rare, joins by spec once.
#[derive(Debug, Clone, Default)]
pub struct LastResults(Arc<Mutex<Recorded>>);

#[derive(Debug, Default)]
struct Recorded {
    by_slot: HashMap<usize, (Arc<CheckSpec>, String, u64)>,
    /// Order of the records: when one spec has had two slots (a slot
    /// dropped and made again), the latest record wins.
    seq: u64,
}

impl LastResults {
    fn record(&self, spec: &Arc<CheckSpec>, reason: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.seq += 1;
            let seq = m.seq;
            match m.by_slot.get_mut(&(Arc::as_ptr(spec) as usize)) {
                Some((_, r, at)) => {
                    if r != reason {
                        reason.clone_into(r);
                    }
                    *at = seq;
                }
                None => {
                    m.by_slot.insert(
                        Arc::as_ptr(spec) as usize,
                        (spec.clone(), reason.to_owned(), seq),
                    );
                }
            }
        }
    }

    /// The latest reason of each spec.
    fn by_spec(&self) -> HashMap<CheckSpec, String> {
        let Ok(m) = self.0.lock() else {
            return HashMap::new();
        };
        let mut latest: HashMap<&CheckSpec, (&String, u64)> = HashMap::new();
        for (spec, reason, seq) in m.by_slot.values() {
            let e = latest.entry(spec).or_insert((reason, *seq));
            if *seq > e.1 {
                *e = (reason, *seq);
            }
        }
        latest
            .into_iter()
            .map(|(spec, (reason, _))| (spec.clone(), reason.clone()))
            .collect()
    }

    /// Forgets the specs no longer configured, and the older records of
    /// a spec that has had more than one slot (so the map stays one entry
    /// per configured spec at most, across any number of reloads).
    fn retain(&self, keep: impl Fn(&CheckSpec) -> bool) {
        if let Ok(mut m) = self.0.lock() {
            let mut latest: HashMap<&CheckSpec, u64> = HashMap::new();
            for (spec, _, seq) in m.by_slot.values() {
                let e = latest.entry(spec).or_insert(*seq);
                *e = (*e).max(*seq);
            }
            let newest: HashSet<u64> = latest.into_values().collect();
            m.by_slot
                .retain(|_, (spec, _, seq)| keep(spec) && newest.contains(seq));
        }
    }
}

/// A prober that records every result in [`LastResults`].
pub struct Recording<P> {
    pub inner: P,
    pub results: LastResults,
}

impl<P: Prober> Prober for Recording<P> {
    fn probe(&self, spec: Arc<CheckSpec>) -> BoxFuture<ProbeOutcome> {
        let run = self.inner.probe(spec.clone());
        let results = self.results.clone();
        Box::pin(async move {
            let outcome = run.await;
            results.record(&spec, &outcome.reason);
            outcome
        })
    }
}

type Triple = (ServiceKey, SocketAddr, CheckSpec);

/// The state of one probe slot (all checks with one spec).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SlotState {
    health: Health,
    reason: Option<String>,
    transitions: u64,
    /// Last weight reported by a dynamic external check.
    weight: Option<u32>,
}

impl SlotState {
    fn initial(spec: &CheckSpec) -> Self {
        let health = match spec.timing.initial {
            InitialState::FullyUp | InitialState::Up => Health::Up,
            InitialState::Down | InitialState::FullyDown => Health::Down,
        };
        SlotState {
            health,
            reason: None,
            transitions: 0,
            weight: None,
        }
    }
}

/// One real server that changed state, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub service: ServiceKey,
    pub real: SocketAddr,
    pub from: Health,
    pub to: Health,
    pub reason: String,
}

/// One probe slot: every check with one spec shares its state.
#[derive(Debug)]
struct Slot {
    spec: CheckSpec,
    state: SlotState,
    /// Its real servers, in config order: one transition is a change of
    /// each (without a scan of every check).
    reals: Vec<(ServiceKey, SocketAddr)>,
}

/// The daemon's view of its checks. See the module documentation.
///
/// Checks and real servers point at their slot by index, so the hot paths
/// (an engine event, the effective table at every transition) never hash
/// or compare a whole `CheckSpec`; specs are hashed only when the config
/// is set.
#[derive(Debug, Default)]
pub struct Checks {
    ids: HashMap<Triple, CheckId>,
    by_id: HashMap<CheckId, usize>,
    by_real: HashMap<(ServiceKey, SocketAddr), usize>,
    slots: Vec<Slot>,
    next: u64,
    transitions: u64,
    results: LastResults,
}

impl Checks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the prober records results (see [`Recording`]).
    pub fn results(&self) -> LastResults {
        self.results.clone()
    }

    /// Takes the checks of `config`; returns the set for the engine.
    pub fn set(&mut self, config: &Config) -> Vec<(CheckId, CheckSpec)> {
        let mut old: HashMap<&CheckSpec, &SlotState> = self
            .slots
            .iter()
            .map(|slot| (&slot.spec, &slot.state))
            .collect();
        let mut ids = HashMap::new();
        let mut by_id = HashMap::new();
        let mut by_real = HashMap::new();
        let mut slot_of: HashMap<&CheckSpec, usize> = HashMap::new();
        let mut slots: Vec<Slot> = Vec::new();
        // Specs that some check kept (same service, real server and spec):
        // their slot keeps its state; any other spec starts afresh.
        let mut kept: HashSet<&CheckSpec> = HashSet::new();
        let mut out = Vec::with_capacity(config.checks.len());
        for c in &config.checks {
            let triple = (c.service, c.real, c.spec.clone());
            let id = match self.ids.get(&triple) {
                Some(id) => {
                    kept.insert(&c.spec);
                    *id
                }
                None => {
                    self.next += 1;
                    CheckId(self.next)
                }
            };
            let slot = *slot_of.entry(&c.spec).or_insert_with(|| {
                slots.push(Slot {
                    spec: c.spec.clone(),
                    state: SlotState::initial(&c.spec),
                    reals: Vec::new(),
                });
                slots.len() - 1
            });
            slots[slot].reals.push((c.service, c.real));
            ids.insert(triple, id);
            by_id.insert(id, slot);
            by_real.insert((c.service, c.real), slot);
            out.push((id, c.spec.clone()));
        }
        for slot in &mut slots {
            if kept.contains(&slot.spec) {
                if let Some(state) = old.remove(&slot.spec) {
                    slot.state = state.clone();
                }
            }
        }
        self.results.retain(|spec| slot_of.contains_key(spec));
        self.ids = ids;
        self.by_id = by_id;
        self.by_real = by_real;
        self.slots = slots;
        out
    }

    /// Applies an engine event. Returns the real servers that changed
    /// health (one slot transition is one change per check of the slot),
    /// and whether the effective table may have changed.
    pub fn on_event(&mut self, event: Event) -> (Vec<Change>, bool) {
        match event {
            Event::Transition {
                check,
                from,
                to,
                reason,
            } => {
                let Some(slot) = self.by_id.get(&check).and_then(|i| self.slots.get_mut(*i)) else {
                    return (Vec::new(), false);
                };
                let state = &mut slot.state;
                if state.health == to {
                    return (Vec::new(), false);
                }
                state.health = to;
                state.transitions += 1;
                state.reason = Some(reason.clone());
                self.transitions += 1;
                let mut changes: Vec<Change> = slot
                    .reals
                    .iter()
                    .map(|(service, real)| Change {
                        service: *service,
                        real: *real,
                        from,
                        to,
                        reason: reason.clone(),
                    })
                    .collect();
                changes.sort_by_key(|c| (c.service, c.real));
                (changes, true)
            }
            Event::Weight { check, weight } => {
                match self.by_id.get(&check).and_then(|i| self.slots.get_mut(*i)) {
                    Some(slot) if slot.state.weight != Some(weight) => {
                        slot.state.weight = Some(weight);
                        (Vec::new(), true)
                    }
                    _ => (Vec::new(), false),
                }
            }
        }
    }

    /// The slot of a real server's check, if it has one.
    fn slot(&self, service: ServiceKey, real: SocketAddr) -> Option<&Slot> {
        self.by_real
            .get(&(service, real))
            .and_then(|i| self.slots.get(*i))
    }

    /// Transitions seen since the daemon started.
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// The config's table with health applied: a Down real server gets
    /// weight 0 (`on_down = "quiescent"`) or leaves the table (`"remove"`);
    /// an Up one has its configured weight, or the weight its dynamic
    /// external check reported.
    pub fn effective(&self, config: &Config) -> Table {
        let mut table = config.to_table();
        for vs in &mut table.services {
            let key = vs.key();
            let on_down = vs.on_down;
            vs.reals.retain_mut(|r| {
                let Some(state) = self.slot(key, r.addr).map(|slot| &slot.state) else {
                    return true;
                };
                match state.health {
                    Health::Up => {
                        if let Some(w) = state.weight {
                            r.weight = w;
                        }
                        true
                    }
                    Health::Down => match on_down {
                        OnDown::Quiescent => {
                            r.weight = 0;
                            true
                        }
                        OnDown::Remove => false,
                    },
                }
            });
        }
        table
    }

    /// Health of every checked real server, in config order.
    pub fn report(&self, config: &Config) -> Vec<RealHealth> {
        let mut out = Vec::new();
        let last = self.results.by_spec();
        for vs in &config.services {
            let key = vs.key();
            for r in &vs.reals {
                let Some(Slot { spec, state, .. }) = self.slot(key, r.addr) else {
                    continue;
                };
                out.push(RealHealth {
                    service: vs.name.clone(),
                    protocol: vs.protocol,
                    listen: vs.listen,
                    real: r.addr,
                    health: match state.health {
                        Health::Up => HealthState::Up,
                        Health::Down => HealthState::Down,
                    },
                    reason: last.get(spec).cloned().or_else(|| state.reason.clone()),
                    transitions: state.transitions,
                    configured_weight: r.weight,
                    dynamic_weight: state.weight,
                    on_down: vs.on_down,
                    check: describe(spec),
                });
            }
        }
        out
    }
}

/// "health checks: 1 added, 2 changed" between two configs, if any.
pub fn describe_changes(old: &Config, new: &Config) -> Option<String> {
    let key = |c: &halb_config::RealCheck| (c.service, c.real);
    let before: HashMap<_, _> = old.checks.iter().map(|c| (key(c), &c.spec)).collect();
    let after: HashMap<_, _> = new.checks.iter().map(|c| (key(c), &c.spec)).collect();
    let added = after.keys().filter(|k| !before.contains_key(*k)).count();
    let removed = before.keys().filter(|k| !after.contains_key(*k)).count();
    let changed = after
        .iter()
        .filter(|(k, s)| before.get(*k).is_some_and(|b| b != *s))
        .count();
    let parts: Vec<String> = [(added, "added"), (removed, "removed"), (changed, "changed")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    (!parts.is_empty()).then(|| format!("health checks: {}", parts.join(", ")))
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
        ProbeSpec::Smtp(s) => format!("smtp EHLO {} {t}", s.helo_name),
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
    };
    format!(
        "{what} every {:?}, rise {} fall {}",
        spec.timing.interval, spec.timing.rise, spec.timing.fall
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(on_down: &str, path: &str) -> Config {
        let src = format!(
            r#"
[global]
on_down = "{on_down}"
check = {{ type = "http", path = "{path}", initial = "down" }}

[[virtual_service]]
listen = "127.0.0.1:8080"
  [[virtual_service.real_server]]
  address = "127.0.0.1:18081"
  weight = 3
  [[virtual_service.real_server]]
  address = "127.0.0.1:18082"
  weight = 2

[[virtual_service]]
listen = "127.0.0.1:8081"
  [[virtual_service.real_server]]
  address = "127.0.0.1:18081"
"#
        );
        halb_config::parse(&src, Path::new("t.toml")).unwrap()
    }

    fn weights(t: &Table) -> Vec<Vec<(u16, u32)>> {
        t.services
            .iter()
            .map(|s| s.reals.iter().map(|r| (r.addr.port(), r.weight)).collect())
            .collect()
    }

    fn up(id: CheckId) -> Event {
        Event::Transition {
            check: id,
            from: Health::Down,
            to: Health::Up,
            reason: "HTTP 200".into(),
        }
    }

    #[test]
    fn effective_table_follows_health() {
        let c = cfg("quiescent", "/h");
        let mut checks = Checks::new();
        let set = checks.set(&c);
        assert_eq!(set.len(), 3);
        // Initially down: quiescent.
        assert_eq!(
            weights(&checks.effective(&c)),
            [vec![(18081, 0), (18082, 0)], vec![(18081, 0)]]
        );
        // One transition of the shared 18081 slot brings both services' entries up.
        let (changes, changed) = checks.on_event(up(set[0].0));
        assert!(changed);
        assert_eq!(changes.len(), 2);
        let (again, _) = checks.on_event(up(set[2].0));
        assert!(again.is_empty(), "same slot, same transition");
        assert_eq!(
            weights(&checks.effective(&c)),
            [vec![(18081, 3), (18082, 0)], vec![(18081, 1)]]
        );
        assert_eq!(checks.transitions(), 1);

        // Remove mode drops down servers; the reload keeps the state.
        let r = cfg("remove", "/h");
        let set2 = checks.set(&r);
        assert_eq!(set2, set, "unchanged checks keep their ids");
        assert_eq!(
            weights(&checks.effective(&r)),
            [vec![(18081, 3)], vec![(18081, 1)]]
        );
        let rep = checks.report(&r);
        assert_eq!(rep.len(), 3);
        assert_eq!(rep[0].health, HealthState::Up);
        assert_eq!(rep[0].reason.as_deref(), Some("HTTP 200"));
        assert_eq!(rep[1].health, HealthState::Down);
        assert_eq!(rep[1].reason, None, "not probed yet");

        // A changed spec is a new check, at its initial state; old events are ignored.
        let p = cfg("remove", "/other");
        let set3 = checks.set(&p);
        assert!(set3
            .iter()
            .all(|(id, _)| !set.iter().any(|(old, _)| old == id)));
        assert_eq!(checks.on_event(up(set[0].0)), (Vec::new(), false));
        assert_eq!(weights(&checks.effective(&p)), [vec![], vec![]]);
    }

    struct Scripted;
    impl Prober for Scripted {
        fn probe(&self, spec: Arc<CheckSpec>) -> BoxFuture<ProbeOutcome> {
            let port = spec.target.port();
            Box::pin(async move {
                ProbeOutcome::down(format!("connect to 127.0.0.1:{port}: Connection refused"))
            })
        }
    }

    /// The last probe's reason is reported before any transition, and
    /// forgotten when its check leaves the config.
    #[tokio::test]
    async fn last_result_is_reported_before_a_transition() {
        let c = cfg("quiescent", "/h");
        let mut checks = Checks::new();
        let set = checks.set(&c);
        let prober = Recording {
            inner: Scripted,
            results: checks.results(),
        };
        for (_, spec) in &set {
            let o = prober.probe(Arc::new(spec.clone())).await;
            assert!(!o.ok);
        }
        let rep = checks.report(&c);
        assert_eq!(rep[1].health, HealthState::Down);
        assert_eq!(checks.transitions(), 0);
        assert_eq!(
            rep[1].reason.as_deref(),
            Some("connect to 127.0.0.1:18082: Connection refused")
        );
        checks.set(&cfg("quiescent", "/other"));
        assert!(!checks.results().by_spec().contains_key(&set[1].1));
    }

    /// Records are keyed by slot; when one spec has had two slots (dropped
    /// and made again), the latest record is the one reported.
    #[test]
    fn latest_record_of_a_spec_wins_across_slots() {
        let c = cfg("quiescent", "/h");
        let mut checks = Checks::new();
        let set = checks.set(&c);
        let results = checks.results();
        let (old, new) = (Arc::new(set[0].1.clone()), Arc::new(set[0].1.clone()));
        results.record(&old, "old");
        results.record(&new, "new");
        assert_eq!(results.by_spec()[&set[0].1], "new");
        results.record(&old, "old again");
        assert_eq!(results.by_spec()[&set[0].1], "old again");
        assert_eq!(results.by_spec().len(), 1);
        // A reload keeps only the latest record of each configured spec.
        checks.set(&c);
        assert_eq!(results.0.lock().unwrap().by_slot.len(), 1);
        assert_eq!(results.by_spec()[&set[0].1], "old again");
    }

    #[test]
    fn unchecked_real_servers_are_always_up_and_dynamic_weights_apply() {
        let src = r#"
[[virtual_service]]
listen = "127.0.0.1:8080"
  [[virtual_service.real_server]]
  address = "127.0.0.1:18081"
  weight = 5
  [[virtual_service.real_server]]
  address = "127.0.0.1:18082"
  check = { command = ["/bin/true"], dynamic_weight = true, initial = "up" }
"#;
        let c = halb_config::parse(src, Path::new("t.toml")).unwrap();
        let mut checks = Checks::new();
        let set = checks.set(&c);
        assert_eq!(set.len(), 1);
        assert_eq!(
            weights(&checks.effective(&c)),
            [vec![(18081, 5), (18082, 1)]]
        );
        let (_, changed) = checks.on_event(Event::Weight {
            check: set[0].0,
            weight: 7,
        });
        assert!(changed);
        assert_eq!(
            weights(&checks.effective(&c)),
            [vec![(18081, 5), (18082, 7)]]
        );
        assert!(describe(&set[0].1).starts_with("external /bin/true"));
    }
}
