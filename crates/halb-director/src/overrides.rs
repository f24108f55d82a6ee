//! Operators' runtime overrides of real servers (issue 19): `halb weight`,
//! `halb drain`, `halb disable`, `halb enable` — what `ipvsadm -e … -w 0`
//! does by hand, kept by the director so that the next table does not undo
//! it.
//!
//! Precedence, per real server: the configured weight, then health (a real
//! server that is Down is quiescent or removed as its `on_down` says,
//! whatever the override), then the override:
//! - `Weight(n)`: weight n while it is up (a dynamic check's weight is
//!   replaced);
//! - `Drain`: weight 0 (quiescent: established connections go on, no new
//!   ones), up or down;
//! - `Disable`: out of the table (HAProxy's `maint`).
//!
//! Overrides survive a reload for real servers the new config still has;
//! `halb enable` clears one.

use halb_config::Config;
use halb_table::{ServiceKey, Table};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// One real server's override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Override {
    Weight(u32),
    Drain,
    Disable,
}

impl Override {
    /// The marker `halb list` shows.
    pub fn marker(self) -> String {
        match self {
            Override::Weight(n) => format!("weight {n} (halb weight)"),
            Override::Drain => "draining (halb drain)".to_owned(),
            Override::Disable => "disabled (halb disable)".to_owned(),
        }
    }
}

/// What an operator asks for one real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RealAction {
    Weight(u32),
    Drain,
    Disable,
    /// Back to the configured (or health-driven) weight.
    Enable,
}

/// Why a command names nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    NoService {
        given: String,
        known: Vec<String>,
    },
    NoReal {
        service: String,
        given: String,
        known: Vec<String>,
    },
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetError::NoService { given, known } => write!(
                f,
                "no virtual service {given:?}; the services (by name or VIP:port): {}",
                known.join(", ")
            ),
            TargetError::NoReal {
                service,
                given,
                known,
            } => write!(
                f,
                "virtual service {service} has no real server {given:?}; its real servers: {}",
                known.join(", ")
            ),
        }
    }
}

impl std::error::Error for TargetError {}

/// The service named `service` (its name, or its listen address as
/// VIP:port) and its real server `real` (address:port) in `config`.
pub fn resolve(
    config: &Config,
    service: &str,
    real: &str,
) -> Result<(ServiceKey, SocketAddr), TargetError> {
    let svc = config
        .services
        .iter()
        .find(|s| s.name == service || s.listen.to_string() == service)
        .ok_or_else(|| TargetError::NoService {
            given: service.to_owned(),
            known: config
                .services
                .iter()
                .map(|s| format!("{} ({})", s.name, s.listen))
                .collect(),
        })?;
    let r = svc
        .reals
        .iter()
        .find(|r| {
            r.addr.to_string() == real || real.parse::<SocketAddr>().is_ok_and(|a| a == r.addr)
        })
        .ok_or_else(|| TargetError::NoReal {
            service: svc.name.clone(),
            given: real.to_owned(),
            known: svc.reals.iter().map(|r| r.addr.to_string()).collect(),
        })?;
    Ok((svc.key(), r.addr))
}

/// One saved override.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Saved {
    pub service: ServiceKey,
    pub real: SocketAddr,
    #[serde(rename = "override")]
    pub what: Override,
}

/// The overrides in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    by_real: BTreeMap<(ServiceKey, SocketAddr), Override>,
}

impl Overrides {
    /// Apply `action`; returns whether anything changed.
    pub fn set(&mut self, service: ServiceKey, real: SocketAddr, action: RealAction) -> bool {
        let new = match action {
            RealAction::Weight(n) => Some(Override::Weight(n)),
            RealAction::Drain => Some(Override::Drain),
            RealAction::Disable => Some(Override::Disable),
            RealAction::Enable => None,
        };
        let old = match new {
            Some(o) => self.by_real.insert((service, real), o),
            None => self.by_real.remove(&(service, real)),
        };
        old != new
    }

    pub fn get(&self, service: ServiceKey, real: SocketAddr) -> Option<Override> {
        self.by_real.get(&(service, real)).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&(ServiceKey, SocketAddr), &Override)> {
        self.by_real.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.by_real.is_empty()
    }

    /// `halb reset`: every override ends; how many there were.
    pub fn clear(&mut self) -> usize {
        std::mem::take(&mut self.by_real).len()
    }

    /// The overrides as saved in the state file (HAProxy's
    /// server-state-file): one entry per real server.
    pub fn to_saved(&self) -> Vec<Saved> {
        self.by_real
            .iter()
            .map(|((service, real), what)| Saved {
                service: *service,
                real: *real,
                what: *what,
            })
            .collect()
    }

    /// From a state file: the entries `config` still has.
    pub fn from_saved(saved: &[Saved], config: &Config) -> Overrides {
        let mut o = Overrides {
            by_real: saved
                .iter()
                .map(|s| ((s.service, s.real), s.what))
                .collect(),
        };
        o.retain_in(config);
        o
    }

    /// After a reload: only real servers the new config still has keep
    /// theirs.
    pub fn retain_in(&mut self, config: &Config) {
        self.by_real.retain(|(svc, real), _| {
            config
                .services
                .iter()
                .any(|s| s.key() == *svc && s.reals.iter().any(|r| r.addr == *real))
        });
    }

    /// The table with the overrides applied. `down(service, real)`: the
    /// real server's health is Down (its weight is already 0, or it is
    /// already out, as `on_down` says): a `Weight` override does not raise
    /// it.
    pub fn apply(&self, table: &mut Table, down: impl Fn(ServiceKey, SocketAddr) -> bool) {
        if self.by_real.is_empty() {
            return;
        }
        for vs in &mut table.services {
            let key = vs.key();
            vs.reals
                .retain_mut(|r| match self.by_real.get(&(key, r.addr)) {
                    None => true,
                    Some(Override::Disable) => false,
                    Some(Override::Drain) => {
                        r.weight = 0;
                        true
                    }
                    Some(Override::Weight(n)) => {
                        if !down(key, r.addr) {
                            r.weight = *n;
                        }
                        true
                    }
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halb_table::{Protocol, RealServer, SchedulerKind, VirtualService};

    fn table() -> (Table, ServiceKey, SocketAddr, SocketAddr) {
        let a: SocketAddr = "192.0.2.21:80".parse().unwrap();
        let b: SocketAddr = "192.0.2.22:80".parse().unwrap();
        let mut vs = VirtualService::new(
            "web",
            "192.0.2.100:80".parse().unwrap(),
            Protocol::Tcp,
            SchedulerKind::Wrr,
        );
        vs.reals = vec![RealServer::new(a, 5), RealServer::new(b, 5)];
        let key = vs.key();
        (Table { services: vec![vs] }, key, a, b)
    }

    #[test]
    fn precedence_config_then_health_then_override() {
        let (t0, key, a, b) = table();
        let mut o = Overrides::default();
        assert!(o.set(key, a, RealAction::Drain));
        assert!(!o.set(key, a, RealAction::Drain), "no change");
        assert!(o.set(key, b, RealAction::Weight(9)));
        let mut t = t0.clone();
        o.apply(&mut t, |_, _| false);
        assert_eq!(t.services[0].reals[0].weight, 0);
        assert_eq!(t.services[0].reals[1].weight, 9);
        // b is down (health set its weight 0): the override does not
        // raise it.
        let mut t = t0.clone();
        t.services[0].reals[1].weight = 0;
        o.apply(&mut t, |_, r| r == b);
        assert_eq!(t.services[0].reals[1].weight, 0);
        // disable: out; enable: back as configured.
        assert!(o.set(key, a, RealAction::Disable));
        let mut t = t0.clone();
        o.apply(&mut t, |_, _| false);
        assert_eq!(t.services[0].reals.len(), 1);
        assert!(o.set(key, a, RealAction::Enable));
        assert!(o.set(key, b, RealAction::Enable));
        assert!(o.is_empty());
        let mut t = t0.clone();
        o.apply(&mut t, |_, _| false);
        assert_eq!(t, t0);
    }
}
