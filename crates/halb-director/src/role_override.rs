//! The operators' overrides of this director's VRRP role: `halb standby`
//! (heartbeat's `hb_standby`, `crm node standby`) and `halb takeover
//! [INSTANCE]` (`hb_takeover`), ended by `halb online`.
//!
//! - **Standby**: every instance gets the fault [`STANDBY_FAULT`]. A
//!   master sends a priority-0 advert and gives its VIPs (and the resource
//!   groups that follow them) to its peer; nothing is taken back until
//!   `halb online`.
//! - **Takeover**: the named instances (all, without a name), each with
//!   the rest of its sync group, hold priority 254 and become master now
//!   (see `halb_vrrp::Router::set_takeover`). The resource groups that
//!   follow them start here only once the old master has stopped its own
//!   (its releasing adverts end: the hand-over of `halb_vrrp::router`).
//!
//! Both are kept across reloads (re-sent to a new VRRP) and restarts
//! ([`Saved`], in the daemon's state file).

use std::collections::{BTreeSet, VecDeque};

use halb_config::Config;

use crate::Action;

/// The VRRP fault key of `halb standby`.
pub const STANDBY_FAULT: &str = "standby (halb standby; `halb online` ends it)";

/// Why `halb takeover` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeoverError {
    /// The config has no VRRP instance.
    NoInstances,
    /// No instance of that name; the valid ones.
    Unknown { name: String, valid: Vec<String> },
    /// `halb standby` is in force.
    InStandby,
    /// Priority 255: the instance is master whenever it runs.
    Owner { instance: String },
}

impl std::fmt::Display for TakeoverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TakeoverError::NoInstances => {
                f.write_str("no vrrp_instance in the config: there is nothing to take over")
            }
            TakeoverError::Unknown { name, valid } => write!(
                f,
                "no vrrp_instance named {name:?}; the instances are: {}",
                valid.join(", ")
            ),
            TakeoverError::InStandby => f.write_str(
                "this director is in standby: run `halb online` first, then `halb takeover`",
            ),
            TakeoverError::Owner { instance } => write!(
                f,
                "vrrp_instance {instance:?} has priority 255 (address owner): it is master whenever it runs"
            ),
        }
    }
}

impl std::error::Error for TakeoverError {}

/// What the state file keeps of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Saved {
    #[serde(default)]
    pub standby: bool,
    /// Instances under takeover.
    #[serde(default)]
    pub takeover: Vec<String>,
}

/// Standby and takeover in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleOverride {
    standby: bool,
    takeover: BTreeSet<String>,
}

impl RoleOverride {
    /// Whether `halb standby` is in force.
    pub fn standby(&self) -> bool {
        self.standby
    }

    /// The instances under `halb takeover`.
    pub fn takeover(&self) -> &BTreeSet<String> {
        &self.takeover
    }

    /// `halb standby` (true) / the standby part of `halb online`. A
    /// standby ends every takeover. True when it changed something.
    pub fn set_standby(&mut self, on: bool, config: &Config, out: &mut VecDeque<Action>) -> bool {
        if self.standby == on {
            return false;
        }
        if on {
            self.end_takeover(out);
        }
        self.standby = on;
        send_standby(config, on, out);
        true
    }

    /// `halb online`: standby and every takeover end. True when it
    /// changed something.
    pub fn online(&mut self, config: &Config, out: &mut VecDeque<Action>) -> bool {
        let took = self.end_takeover(out);
        self.set_standby(false, config, out) || took
    }

    fn end_takeover(&mut self, out: &mut VecDeque<Action>) -> bool {
        let any = !self.takeover.is_empty();
        for instance in std::mem::take(&mut self.takeover) {
            out.push_back(Action::SetTakeover {
                instance,
                on: false,
            });
        }
        any
    }

    /// `halb takeover [INSTANCE]`: the instances now under takeover.
    pub fn take_over(
        &mut self,
        instance: Option<&str>,
        config: &Config,
        out: &mut VecDeque<Action>,
    ) -> Result<Vec<String>, TakeoverError> {
        if config.vrrp_instances.is_empty() {
            return Err(TakeoverError::NoInstances);
        }
        if self.standby {
            return Err(TakeoverError::InStandby);
        }
        let names: Vec<String> = match instance {
            Some(n) => {
                if !config.vrrp_instances.iter().any(|i| i.name == n) {
                    return Err(TakeoverError::Unknown {
                        name: n.to_owned(),
                        valid: config
                            .vrrp_instances
                            .iter()
                            .map(|i| i.name.clone())
                            .collect(),
                    });
                }
                // With the rest of its sync group.
                let mut v = vec![n.to_owned()];
                if let Some(g) = sync_group_of(config, n) {
                    v = g.instances.clone();
                }
                v
            }
            None => config
                .vrrp_instances
                .iter()
                .filter(|i| i.priority != 255)
                .map(|i| i.name.clone())
                .collect(),
        };
        for n in &names {
            let owner = config
                .vrrp_instances
                .iter()
                .any(|i| &i.name == n && i.priority == 255);
            if owner && instance.is_some() {
                return Err(TakeoverError::Owner {
                    instance: n.clone(),
                });
            }
        }
        for n in &names {
            self.takeover.insert(n.clone());
            out.push_back(Action::SetTakeover {
                instance: n.clone(),
                on: true,
            });
        }
        Ok(names)
    }

    /// A new config: the takeovers of instances it no longer has end;
    /// with `vrrp_reloaded` (a new VRRP) standby and takeover are sent
    /// again.
    pub fn reload(&mut self, config: &Config, vrrp_reloaded: bool, out: &mut VecDeque<Action>) {
        self.takeover
            .retain(|n| config.vrrp_instances.iter().any(|i| &i.name == n));
        if vrrp_reloaded || self.standby {
            self.resend(config, out);
        }
    }

    /// Everything in force, to a VRRP that starts afresh.
    pub fn resend(&self, config: &Config, out: &mut VecDeque<Action>) {
        if self.standby {
            send_standby(config, true, out);
        }
        for instance in &self.takeover {
            out.push_back(Action::SetTakeover {
                instance: instance.clone(),
                on: true,
            });
        }
    }

    /// For the state file.
    pub fn to_saved(&self) -> Saved {
        Saved {
            standby: self.standby,
            takeover: self.takeover.iter().cloned().collect(),
        }
    }

    /// From the state file, for `config`: takeovers of instances it no
    /// longer has are dropped.
    pub fn from_saved(saved: &Saved, config: &Config) -> RoleOverride {
        RoleOverride {
            standby: saved.standby && !config.vrrp_instances.is_empty(),
            takeover: saved
                .takeover
                .iter()
                .filter(|n| config.vrrp_instances.iter().any(|i| &&i.name == n))
                .cloned()
                .collect(),
        }
    }

    /// Standby and takeover exclude each other.
    pub(crate) fn check(&self) {
        assert!(
            !self.standby || self.takeover.is_empty(),
            "standby and takeover at once: {self:?}"
        );
    }
}

fn send_standby(config: &Config, faulty: bool, out: &mut VecDeque<Action>) {
    for i in &config.vrrp_instances {
        out.push_back(Action::SetFault {
            instance: i.name.clone(),
            key: STANDBY_FAULT.to_owned(),
            faulty,
        });
    }
}

fn sync_group_of<'a>(config: &'a Config, instance: &str) -> Option<&'a halb_config::VrrpSyncGroup> {
    config
        .vrrp_sync_groups
        .iter()
        .find(|g| g.instances.iter().any(|i| i == instance))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(extra: &str) -> Config {
        let src = format!(
            r#"
[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = 100
virtual_ipaddress = ["192.0.2.100/24"]

[[vrrp_instance]]
name = "VI_2"
interface = "eth0"
virtual_router_id = 52
priority = 100
virtual_ipaddress = ["192.0.2.101/24"]

[[vrrp_instance]]
name = "VI_3"
interface = "eth0"
virtual_router_id = 53
priority = 100
virtual_ipaddress = ["192.0.2.102/24"]

[[vrrp_sync_group]]
name = "G"
instances = ["VI_2", "VI_3"]
{extra}
"#
        );
        halb_config::parse(&src, Path::new("t.toml")).unwrap()
    }

    fn takeovers(out: &VecDeque<Action>) -> Vec<(String, bool)> {
        out.iter()
            .filter_map(|a| match a {
                Action::SetTakeover { instance, on } => Some((instance.clone(), *on)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_instance_takes_its_sync_group_along_and_online_ends_all() {
        let c = config("");
        let mut r = RoleOverride::default();
        let mut out = VecDeque::new();
        assert_eq!(
            r.take_over(Some("VI_3"), &c, &mut out).unwrap(),
            ["VI_2", "VI_3"]
        );
        assert_eq!(
            takeovers(&out),
            [("VI_2".into(), true), ("VI_3".into(), true)]
        );
        out.clear();
        assert!(r.online(&c, &mut out));
        assert_eq!(
            takeovers(&out),
            [("VI_2".into(), false), ("VI_3".into(), false)]
        );
        assert!(r.takeover().is_empty());
        out.clear();
        assert!(!r.online(&c, &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn refused_for_unknown_names_standby_and_owners() {
        let c = config(
            r#"
[[resource_group]]
name = "db"
follows = "G"
  [[resource_group.member]]
  name = "d"
  agent = "ocf:heartbeat:Dummy"
"#,
        );
        let mut r = RoleOverride::default();
        let mut out = VecDeque::new();
        let e = r.take_over(Some("nope"), &c, &mut out).unwrap_err();
        assert!(e.to_string().contains("VI_1, VI_2, VI_3"), "{e}");
        assert!(out.is_empty() && r.takeover().is_empty());
        // An instance a group follows (through its sync group) is taken
        // over with its group: the hand-over makes it wait for the peer.
        assert_eq!(
            r.take_over(Some("VI_2"), &c, &mut out).unwrap(),
            ["VI_2", "VI_3"]
        );
        r.online(&c, &mut out);
        assert_eq!(r.take_over(Some("VI_1"), &c, &mut out).unwrap(), ["VI_1"]);
        // Standby ends the takeover; a takeover in standby is refused.
        out.clear();
        assert!(r.set_standby(true, &c, &mut out));
        assert_eq!(takeovers(&out), [("VI_1".into(), false)]);
        assert_eq!(
            r.take_over(Some("VI_1"), &c, &mut out),
            Err(TakeoverError::InStandby)
        );
        r.check();
    }

    #[test]
    fn saved_and_restored_for_the_config_of_the_next_run() {
        let c = config("");
        let mut r = RoleOverride::default();
        let mut out = VecDeque::new();
        r.take_over(Some("VI_1"), &c, &mut out).unwrap();
        let saved = r.to_saved();
        let json = serde_json::to_string(&saved).unwrap();
        let back: Saved = serde_json::from_str(&json).unwrap();
        assert_eq!(RoleOverride::from_saved(&back, &c), r);
        // An instance the next config lacks is dropped.
        let gone = Saved {
            standby: false,
            takeover: vec!["VI_1".into(), "VI_7".into()],
        };
        let restored = RoleOverride::from_saved(&gone, &c);
        assert_eq!(restored.takeover().iter().collect::<Vec<_>>(), ["VI_1"]);
        // Resent to a new VRRP.
        out.clear();
        restored.resend(&c, &mut out);
        assert_eq!(takeovers(&out), [("VI_1".into(), true)]);
    }
}
