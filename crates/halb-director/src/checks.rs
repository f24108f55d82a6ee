//! Numbering the checks for the health engine: one [`CheckId`] per real
//! server's check and per VRRP tracker (`track_script`, each host of
//! `track_ping`), stable across reloads while its owner and spec are
//! unchanged (so the engine keeps its state and schedule).
//!
//! The index holds no health: the engine is the one place a check's
//! state lives.

use halb_config::Config;
use halb_health::{CheckId, CheckSpec, ExternalSpec, InitialState, ProbeSpec, Timing};
use halb_table::ServiceKey;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Who a check belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// The check of a real server of a virtual service.
    Real {
        service: ServiceKey,
        real: SocketAddr,
    },
    /// A VRRP instance's `track_script`.
    Script { instance: String, name: String },
    /// One host of a VRRP instance's `track_ping`.
    Ping { instance: String, host: IpAddr },
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct CheckIndex {
    ids: HashMap<(Owner, CheckSpec), CheckId>,
    owners: HashMap<CheckId, Owner>,
    /// A real server's check id and its index in `config.checks`.
    by_real: HashMap<(ServiceKey, SocketAddr), (CheckId, usize)>,
    scripts: HashMap<(String, String), CheckId>,
    pings: HashMap<String, Vec<CheckId>>,
    next: u64,
}

/// The spec of a `track_script`: the command as written (no addresses
/// appended), with the tracker's own timing. It starts up and its first
/// result decides (keepalived's scripts start in an init state).
pub fn script_spec(s: &halb_config::TrackScript) -> Option<CheckSpec> {
    let (program, args) = s.command.split_first()?;
    Some(CheckSpec {
        target: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        probe: ProbeSpec::External(ExternalSpec {
            program: program.into(),
            args: args.to_vec(),
            service: None,
            dynamic_weight: false,
            pass_addresses: false,
        }),
        timing: Timing {
            interval: s.interval,
            timeout: s.timeout,
            rise: s.rise.max(1),
            fall: s.fall.max(1),
            delay_before_retry: s.interval,
            warmup: std::time::Duration::ZERO,
            initial: InitialState::Up,
        },
    })
}

/// The spec of one host of a `track_ping`: an ICMP echo with the
/// tracker's timing; it starts up, `fall` failures take it down.
pub fn ping_spec(p: &halb_config::TrackPing, host: IpAddr) -> CheckSpec {
    CheckSpec {
        target: SocketAddr::new(host, 0),
        probe: ProbeSpec::Icmp,
        timing: Timing {
            interval: p.interval,
            timeout: p.timeout,
            rise: p.rise.max(1),
            fall: p.fall.max(1),
            delay_before_retry: p.interval,
            warmup: std::time::Duration::ZERO,
            initial: InitialState::FullyUp,
        },
    }
}

impl CheckIndex {
    /// Numbers the checks of `config`; returns the set for the engine.
    pub fn set(&mut self, config: &Config) -> Vec<(CheckId, CheckSpec)> {
        let mut out = Vec::with_capacity(config.checks.len());
        let mut ids = HashMap::with_capacity(config.checks.len());
        let mut owners = HashMap::with_capacity(config.checks.len());
        let mut by_real = HashMap::with_capacity(config.checks.len());
        let mut scripts = HashMap::new();
        let mut pings: HashMap<String, Vec<CheckId>> = HashMap::new();
        let mut take = |owner: Owner, spec: CheckSpec, out: &mut Vec<(CheckId, CheckSpec)>| {
            let key = (owner, spec);
            let id = match self.ids.get(&key) {
                Some(id) => *id,
                None => {
                    self.next += 1;
                    CheckId(self.next)
                }
            };
            owners.insert(id, key.0.clone());
            out.push((id, key.1.clone()));
            ids.insert(key, id);
            id
        };
        for (i, c) in config.checks.iter().enumerate() {
            let owner = Owner::Real {
                service: c.service,
                real: c.real,
            };
            let id = take(owner, c.spec.clone(), &mut out);
            by_real.insert((c.service, c.real), (id, i));
        }
        for v in &config.vrrp_instances {
            for s in &v.track_script {
                let Some(spec) = script_spec(s) else { continue };
                let owner = Owner::Script {
                    instance: v.name.clone(),
                    name: s.name.clone(),
                };
                let id = take(owner, spec, &mut out);
                scripts.insert((v.name.clone(), s.name.clone()), id);
            }
            if let Some(p) = &v.track_ping {
                for host in &p.hosts {
                    let owner = Owner::Ping {
                        instance: v.name.clone(),
                        host: *host,
                    };
                    let id = take(owner, ping_spec(p, *host), &mut out);
                    pings.entry(v.name.clone()).or_default().push(id);
                }
            }
        }
        self.ids = ids;
        self.owners = owners;
        self.by_real = by_real;
        self.scripts = scripts;
        self.pings = pings;
        out
    }

    /// The check of a real server and its index in `config.checks`.
    pub fn real(&self, service: ServiceKey, real: SocketAddr) -> Option<(CheckId, usize)> {
        self.by_real.get(&(service, real)).copied()
    }

    /// Who owns `check`.
    pub fn owner(&self, check: CheckId) -> Option<&Owner> {
        self.owners.get(&check)
    }

    /// The check of `instance`'s `track_script` `name`.
    pub fn script(&self, instance: &str, name: &str) -> Option<CheckId> {
        self.scripts
            .get(&(instance.to_owned(), name.to_owned()))
            .copied()
    }

    /// The checks of `instance`'s ping nodes.
    pub fn pings(&self, instance: &str) -> &[CheckId] {
        self.pings.get(instance).map_or(&[], Vec::as_slice)
    }

    /// Every check id.
    pub fn ids(&self) -> impl Iterator<Item = CheckId> + '_ {
        self.owners.keys().copied()
    }

    pub fn len(&self) -> usize {
        self.owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Cross-index consistency (debug builds check it after each input).
    pub fn check_invariants(&self) {
        assert_eq!(self.ids.len(), self.owners.len(), "ids and owners");
        for ((owner, _), id) in &self.ids {
            assert_eq!(self.owners.get(id), Some(owner), "owner of {id:?}");
        }
        for ((service, real), (id, _)) in &self.by_real {
            assert_eq!(
                self.owners.get(id),
                Some(&Owner::Real {
                    service: *service,
                    real: *real
                }),
                "real server check {id:?}"
            );
        }
        for id in self.scripts.values().chain(self.pings.values().flatten()) {
            assert!(self.owners.contains_key(id), "tracker check {id:?}");
        }
    }
}
