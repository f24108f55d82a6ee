//! One virtual router instance: the state machine of RFC 5798 §6.4
//! (RFC 3768 §6.4 for VRRPv2), sans-IO.
//!
//! Inputs are method calls carrying `now`; outputs are [`Action`]s drained
//! with [`Router::poll_action`] and one deadline, [`Router::poll_timeout`],
//! at which the shell calls [`Router::handle_timeout`].
//!
//! # Beyond the RFC (keepalived behaviour)
//!
//! * **Fault** state: link down takes the instance out of the election
//!   (a master removes its addresses); link up starts it again as at
//!   startup (RFC 5798 §6.4.1).
//! * **Preempt delay**: for `preempt_delay` after entering Backup, a
//!   preempting backup still honours a lower-priority master (keepalived's
//!   `preempt_delay`).
//! * **Tracking**: [`Router::set_priority_delta`] shifts the priority,
//!   clamped to 1..=254; an address owner (255) ignores it, as keepalived.
//! * **Gratuitous ARP / unsolicited NA**: a burst on becoming master
//!   (RFC 5798 §6.4.1 / §6.4.2 "broadcast a gratuitous ARP"), a second
//!   burst after `delay`, then periodic refreshes (keepalived's
//!   `garp_master_repeat`, `garp_master_delay`, `garp_master_refresh`). A
//!   master that hears a lower-priority master (split brain healing)
//!   discards the advert as the RFC says, but re-announces its addresses
//!   (at most once per advert interval) so clients converge.
//! * A master that receives a priority-0 advert sends an advert at once
//!   (RFC 5798 §6.4.3).
//!
//! # Redundant paths (halb to halb)
//!
//! A router may hear its master over several **paths** (the LAN and a
//! dedicated link: heartbeat's `bcast eth0` + `bcast eth1`, Corosync's two
//! links). Path 0 is the instance's own interface; [`Config::extra_paths`]
//! are our source addresses on the others. The shell sends every
//! [`Action::SendAdvert`] on every path and gives each received advert to
//! [`Router::handle_advert_on`] with its path. An advert from any path
//! restarts Master_Down_Timer as usual, so the backup takes over only once
//! every path was silent for Master_Down_Interval.
//!
//! With two paths or more a Backup also watches each one
//! ([`Router::paths`]): a path is [`PathState::Alive`] once it carried an
//! advert, and [`PathState::Dead`] when it has been silent for
//! Master_Down_Interval (since its last advert, or since the router
//! became Backup) while another path is alive. Each change is an
//! [`Action::PathChange`]. Only the receiving side can tell: outside Backup
//! (a master hears no adverts) every path is [`PathState::Unknown`]. With
//! one path nothing of this exists: no path action, no path deadline.
//!
//! # Hand-over of resource groups (halb to halb)
//!
//! A director that loses MASTER (preempted, taken over) may still run
//! resource groups that it must stop before its peer starts them (a file
//! system mounted twice corrupts it). Two additions let the peer wait:
//!
//! * **Releasing** ([`Router::set_releasing`]): a Backup that still stops
//!   its groups sends an advert at [`PRIORITY_RELEASING`] every advert
//!   interval, "I may still run them". It holds no address; a master
//!   discards such an advert as any lower-priority one.
//! * **Awaiting the peer** ([`Router::awaiting_peer`]): a router that
//!   becomes master while a live master was there (it preempted one whose
//!   lower-priority adverts it was discarding, or an operator's takeover)
//!   waits until no lower-priority advert has come for a master-down
//!   interval, or a priority-0 one came, then emits
//!   [`Action::PeerReleased`]. A master that took over after silence (the
//!   old master dead) or after a priority-0 release does not wait. The
//!   director starts its groups only once the peer released them; a peer
//!   whose stop blocks keeps releasing, and the groups wait for it.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::packet::{
    Addresses, Advert, Auth, Expected, Version, PRIORITY_OWNER, PRIORITY_RELEASE, PRIORITY_TAKEOVER,
};

/// Gratuitous ARP / unsolicited neighbour advertisement schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gratuitous {
    /// Messages per burst on becoming master (`garp_master_repeat`).
    pub repeat: u32,
    /// Delay before the second burst (`garp_master_delay`); `None`: no
    /// second burst.
    pub delay: Option<Duration>,
    /// Period of refresh bursts while master (`garp_master_refresh`).
    pub refresh: Option<Duration>,
    /// Messages per refresh burst (`garp_master_refresh_repeat`).
    pub refresh_repeat: u32,
    /// Re-announce when a lower-priority master is heard.
    pub on_lower_priority: bool,
}

impl Default for Gratuitous {
    /// keepalived's defaults: 5 now, 5 more after 5 s, no refresh.
    fn default() -> Self {
        Gratuitous {
            repeat: 5,
            delay: Some(Duration::from_secs(5)),
            refresh: None,
            refresh_repeat: 1,
            on_lower_priority: true,
        }
    }
}

/// Configuration of one virtual router (RFC 5798 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// VRID, 1..=255.
    pub vrid: u8,
    /// Protocol version.
    pub version: Version,
    /// Priority 1..=255; 255 is the address owner.
    pub priority: u8,
    /// Advertisement_Interval: v3 in centiseconds from 10 ms to 40.95 s;
    /// v2 in whole seconds from 1 to 255 s.
    pub advert_interval: Duration,
    /// Preempt_Mode.
    pub preempt: bool,
    /// See the module documentation.
    pub preempt_delay: Duration,
    /// Accept_Mode (RFC 5798 §6.1): a non-owner master accepts packets
    /// addressed to the virtual addresses. Passed on in
    /// [`Action::AddAddresses`].
    pub accept_mode: bool,
    /// The primary address: the advert's source, the tie-breaker.
    pub primary_address: IpAddr,
    /// The virtual addresses (IPvX Address(es)), one family.
    pub virtual_addresses: Vec<IpAddr>,
    /// Unicast peers; empty: multicast. The engine does not use them: the
    /// shell sends each [`Action::SendAdvert`] accordingly.
    pub unicast_peers: Vec<IpAddr>,
    /// v2 authentication; must be [`Auth::None`] for v3.
    pub auth: Auth,
    /// Gratuitous ARP / NA schedule.
    pub gratuitous: Gratuitous,
    /// halb-to-halb: at startup (as Backup) send one advert at our
    /// priority. A peer that took over while this router's daemon
    /// restarted has not, by then, had a Master_Down_Interval of silence:
    /// the advert restarts its timer, so a restarted master whose resource
    /// groups still run becomes master again instead of the peer starting
    /// them too. Set for instances that resource groups follow.
    pub announce_at_startup: bool,
    /// Redundant paths (halb to halb, see the module documentation): our
    /// source address on path 1, 2, …; empty: the one path of the RFC.
    pub extra_paths: Vec<IpAddr>,
}

impl Config {
    /// A v3 configuration with defaults: 1 s interval, preempt on, no
    /// preempt delay, accept mode off, multicast, keepalived's GARP
    /// schedule.
    pub fn new(
        vrid: u8,
        priority: u8,
        primary_address: IpAddr,
        virtual_addresses: Vec<IpAddr>,
    ) -> Config {
        Config {
            vrid,
            version: Version::V3,
            priority,
            advert_interval: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            accept_mode: false,
            primary_address,
            virtual_addresses,
            unicast_peers: Vec::new(),
            auth: Auth::None,
            gratuitous: Gratuitous::default(),
            announce_at_startup: false,
            extra_paths: Vec::new(),
        }
    }

    /// Checks the ranges of RFC 5798 §5.2 / RFC 3768 §5.3.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vrid == 0 {
            return Err(ConfigError::Vrid);
        }
        if self.priority == 0 {
            return Err(ConfigError::Priority);
        }
        let nanos = self.advert_interval.as_nanos();
        let ok = match self.version {
            Version::V2 => {
                nanos % 1_000_000_000 == 0 && (1..=255).contains(&(nanos / 1_000_000_000))
            }
            Version::V3 => {
                nanos % 10_000_000 == 0
                    && (1..=u128::from(crate::packet::MAX_V3_INTERVAL_CS))
                        .contains(&(nanos / 10_000_000))
            }
        };
        if !ok {
            return Err(ConfigError::Interval {
                version: self.version,
                interval: self.advert_interval,
            });
        }
        if self.virtual_addresses.is_empty() {
            return Err(ConfigError::NoAddresses);
        }
        if self.virtual_addresses.len() > 255 {
            return Err(ConfigError::TooManyAddresses(self.virtual_addresses.len()));
        }
        let v6 = self.primary_address.is_ipv6();
        if self.virtual_addresses.iter().any(|a| a.is_ipv6() != v6)
            || self.unicast_peers.iter().any(|a| a.is_ipv6() != v6)
            || self.extra_paths.iter().any(|a| a.is_ipv6() != v6)
        {
            return Err(ConfigError::Family);
        }
        if self.version == Version::V2 && v6 {
            return Err(ConfigError::V2Ipv6);
        }
        if self.version == Version::V3 && self.auth != Auth::None {
            return Err(ConfigError::V3Auth);
        }
        Ok(())
    }

    fn interval_cs(&self) -> u16 {
        // validate() bounds it to 25 500 cs.
        (self.advert_interval.as_millis() / 10) as u16
    }
}

/// A configuration [`Router::new`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// VRID 0 is not valid (RFC 5798 §5.2.3: 1-255).
    #[error("virtual router id must be 1..=255")]
    Vrid,
    /// Priority 0 is reserved for release (RFC 5798 §5.2.4).
    #[error("priority must be 1..=255")]
    Priority,
    /// Interval outside the version's range or resolution.
    #[error("advert interval {interval:?} not valid for VRRP{version:?} (v2: 1..255 whole seconds; v3: 10 ms..40.95 s in 10 ms steps)")]
    Interval {
        /// Protocol version.
        version: Version,
        /// Configured interval.
        interval: Duration,
    },
    /// No virtual address.
    #[error("at least one virtual address is needed")]
    NoAddresses,
    /// More than an advert carries.
    #[error("{0} virtual addresses: at most 255")]
    TooManyAddresses(usize),
    /// Primary, virtual, peer and path addresses must share a family.
    #[error("primary, virtual, peer and path addresses must be of one family")]
    Family,
    /// VRRPv2 is IPv4 only.
    #[error("VRRPv2 is IPv4 only")]
    V2Ipv6,
    /// VRRPv3 has no authentication.
    #[error("VRRPv3 has no authentication (RFC 5798 §9)")]
    V3Auth,
}

/// What a Backup knows of one path (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathState {
    /// Not watched: not Backup, one path only, or not heard yet.
    Unknown,
    /// An advert came over it within Master_Down_Interval.
    Alive,
    /// Silent for Master_Down_Interval while another path was alive.
    Dead,
}

impl PathState {
    /// `unknown`, `alive`, `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            PathState::Unknown => "unknown",
            PathState::Alive => "alive",
            PathState::Dead => "dead",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct PathWatch {
    state: PathState,
    /// The last advert over it, in this Backup spell.
    heard: Option<Instant>,
}

/// Instance state (RFC 5798 §6.4, plus keepalived's Fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not started, or shut down.
    Initialize,
    /// Monitoring the master.
    Backup,
    /// Forwarding for the virtual addresses.
    Master,
    /// Link down: out of the election.
    Fault,
}

/// Why a state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Startup event, non-owner (RFC 5798 §6.4.1).
    Startup,
    /// Startup event with priority 255 (RFC 5798 §6.4.1).
    AddressOwner,
    /// Master_Down_Timer fired (RFC 5798 §6.4.2).
    MasterDown,
    /// A higher priority (or equal priority, greater address) advert
    /// reached a master (RFC 5798 §6.4.3).
    HigherPriority,
    /// The link went down.
    LinkDown,
    /// The link came back.
    LinkUp,
    /// Shutdown event (RFC 5798 §6.4.2, §6.4.3).
    Shutdown,
    /// Another member of the sync group moved.
    SyncGroup,
    /// An operator's `halb takeover` ([`Router::set_takeover`]).
    Takeover,
}

/// The priority of a releasing backup's adverts (see the module docs).
pub const PRIORITY_RELEASING: u8 = 1;

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this advert (to the multicast group, or to each unicast peer),
    /// from the primary address with TTL 255.
    SendAdvert(Advert),
    /// Configure the virtual addresses. `accept`: Accept_Mode, always true
    /// for the address owner (RFC 5798 §6.1).
    AddAddresses {
        /// The virtual addresses.
        addresses: Vec<IpAddr>,
        /// Accept packets addressed to them.
        accept: bool,
    },
    /// Remove the virtual addresses.
    RemoveAddresses {
        /// The virtual addresses.
        addresses: Vec<IpAddr>,
    },
    /// Send `count` gratuitous ARPs (IPv4) or unsolicited neighbour
    /// advertisements (IPv6) for each address.
    SendGratuitous {
        /// The virtual addresses.
        addresses: Vec<IpAddr>,
        /// Messages per address.
        count: u32,
    },
    /// A master that awaited its peer ([`Router::awaiting_peer`]): the
    /// peer has released (its releasing adverts stopped, or it sent
    /// priority 0).
    PeerReleased,
    /// The state changed (for notify hooks, logs, `halb list`).
    StateChange {
        /// Old state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        reason: Reason,
    },
    /// A Backup's view of path `path` changed (two paths or more; see
    /// the module documentation).
    PathChange {
        /// 0: the instance's interface; 1…: [`Config::extra_paths`].
        path: usize,
        /// Before.
        from: PathState,
        /// Now.
        to: PathState,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GarpPhase {
    Second,
    Refresh,
}

/// One virtual router instance.
#[derive(Debug)]
pub struct Router {
    config: Config,
    addresses: Addresses,
    state: State,
    link_up: bool,
    priority_delta: i32,
    /// `halb takeover` in force ([`Router::set_takeover`]).
    takeover: bool,
    /// Backup: groups still stop here ([`Router::set_releasing`]).
    releasing: bool,
    /// Backup, releasing: the next releasing advert.
    release_timer: Option<Instant>,
    /// Master: until then the previous master may still run groups.
    awaiting_until: Option<Instant>,
    /// Backup: when a live master's advert was last heard (discarded for
    /// preemption or accepted), and whether it was a priority-0 release.
    last_master: Option<(Instant, bool)>,
    master_adver_interval: Duration,
    adver_timer: Option<Instant>,
    master_down_timer: Option<Instant>,
    garp_timer: Option<(Instant, GarpPhase)>,
    preempt_after: Option<Instant>,
    last_lower_garp: Option<Instant>,
    /// One per path (path 0 first); watched with two or more, in Backup.
    paths: Vec<PathWatch>,
    /// When this Backup spell began: a path never heard since is dead
    /// Master_Down_Interval later if another one is alive.
    backup_since: Option<Instant>,
    actions: VecDeque<Action>,
}

impl Router {
    /// A new instance in Initialize, link assumed up.
    pub fn new(config: Config) -> Result<Router, ConfigError> {
        config.validate()?;
        let addresses =
            Addresses::from_ip_addrs(&config.virtual_addresses).ok_or(ConfigError::Family)?;
        let n_paths = 1 + config.extra_paths.len();
        Ok(Router {
            master_adver_interval: config.advert_interval,
            config,
            addresses,
            state: State::Initialize,
            link_up: true,
            priority_delta: 0,
            takeover: false,
            releasing: false,
            release_timer: None,
            awaiting_until: None,
            last_master: None,
            adver_timer: None,
            master_down_timer: None,
            garp_timer: None,
            preempt_after: None,
            last_lower_garp: None,
            paths: vec![
                PathWatch {
                    state: PathState::Unknown,
                    heard: None,
                };
                n_paths
            ],
            backup_since: None,
            actions: VecDeque::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the link is up.
    pub fn is_link_up(&self) -> bool {
        self.link_up
    }

    /// The priority in use: the configured one plus the tracking delta,
    /// within 1..=254; 255 for an owner; 254 while a takeover is in force.
    pub fn priority(&self) -> u8 {
        if self.config.priority == PRIORITY_OWNER {
            PRIORITY_OWNER
        } else if self.takeover {
            PRIORITY_TAKEOVER
        } else {
            (i32::from(self.config.priority) + self.priority_delta).clamp(1, 254) as u8
        }
    }

    fn is_owner(&self) -> bool {
        self.config.priority == PRIORITY_OWNER
    }

    /// Master_Adver_Interval (RFC 5798 §6.1): learned from the master's
    /// adverts in Backup (v3); the configured interval for v2.
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// Skew_Time (RFC 5798 §6.1): `((256 - Priority) *
    /// Master_Adver_Interval) / 256`; v2 (RFC 3768 §6.1):
    /// `(256 - Priority) / 256` seconds.
    pub fn skew_time(&self) -> Duration {
        let p = 256 - u32::from(self.priority());
        match self.config.version {
            Version::V3 => self.master_adver_interval * p / 256,
            Version::V2 => Duration::from_secs(1) * p / 256,
        }
    }

    /// Master_Down_Interval (RFC 5798 §6.1): `3 * Master_Adver_Interval +
    /// Skew_Time`.
    pub fn master_down_interval(&self) -> Duration {
        3 * self.master_adver_interval + self.skew_time()
    }

    /// What [`crate::packet::decode`] should accept for this instance.
    pub fn expected(&self) -> Expected {
        Expected {
            version: self.config.version,
            vrid: self.config.vrid,
            local_is_owner: self.is_owner(),
            auth: self.config.auth.clone(),
            interval_cs: self.config.interval_cs(),
            addresses: self.config.virtual_addresses.clone(),
        }
    }

    /// The advert this router sends now, at `priority`.
    pub fn advert(&self, priority: u8) -> Advert {
        Advert {
            version: self.config.version,
            vrid: self.config.vrid,
            priority,
            interval_cs: self.config.interval_cs(),
            auth: self.config.auth.clone(),
            addresses: self.addresses.clone(),
        }
    }

    /// Startup event (RFC 5798 §6.4.1). No effect unless in Initialize.
    /// With the link down the instance goes to Fault.
    pub fn start(&mut self, now: Instant) {
        if self.state != State::Initialize {
            return;
        }
        if !self.link_up {
            self.set_state(State::Fault, Reason::LinkDown);
            return;
        }
        self.startup(now, Reason::Startup);
    }

    fn startup(&mut self, now: Instant, reason: Reason) {
        if self.is_owner() {
            self.become_master(
                now,
                if reason == Reason::Startup {
                    Reason::AddressOwner
                } else {
                    reason
                },
            );
        } else {
            self.master_adver_interval = self.config.advert_interval;
            self.become_backup(now, reason);
            if self.config.announce_at_startup && reason == Reason::Startup {
                self.actions
                    .push_back(Action::SendAdvert(self.advert(self.priority())));
            }
        }
    }

    /// Shutdown event (RFC 5798 §6.4.2, §6.4.3): a master sends a
    /// priority-0 advert and removes its addresses; every state goes to
    /// Initialize.
    pub fn shutdown(&mut self, _now: Instant) {
        if self.state == State::Master {
            self.actions
                .push_back(Action::SendAdvert(self.advert(PRIORITY_RELEASE)));
            self.remove_addresses();
        }
        self.clear_timers();
        if self.state != State::Initialize {
            self.set_state(State::Initialize, Reason::Shutdown);
        }
    }

    /// The interface went down: Backup and Master go to Fault (a master
    /// removes its addresses first).
    pub fn link_down(&mut self, _now: Instant) {
        self.link_up = false;
        if matches!(self.state, State::Backup | State::Master) {
            self.enter_fault(Reason::LinkDown);
        }
    }

    /// The interface came up: Fault starts again as at startup.
    pub fn link_up(&mut self, now: Instant) {
        self.link_up = true;
        if self.state == State::Fault {
            self.startup(now, Reason::LinkUp);
        }
    }

    /// Tracking: the priority becomes the configured one plus `delta`
    /// (clamped to 1..=254; no effect on an owner). It is used from the
    /// next advert sent or received, as the RFC's election goes: a master
    /// whose priority fell is preempted by a preempting backup after
    /// Master_Down_Interval, a backup whose priority rose above the
    /// master's preempts likewise.
    pub fn set_priority_delta(&mut self, delta: i32) {
        self.priority_delta = delta;
    }

    /// `halb takeover` (heartbeat's `hb_takeover`): while `on`, the
    /// priority is [`PRIORITY_TAKEOVER`] (above every peer but an address
    /// owner) and the router preempts whatever `preempt` says; a backup
    /// becomes master at once, and the old master steps down on its first
    /// advert at 254 (asked again in Backup, as after a restart that kept
    /// the takeover, it becomes master again at once). Off: the configured priority and preemption again
    /// (the router stays master until a peer with a higher priority
    /// preempts it). No effect on an address owner, which is master
    /// anyway. True when it changed something.
    pub fn set_takeover(&mut self, on: bool, now: Instant) -> bool {
        if self.is_owner() {
            return false;
        }
        let changed = self.takeover != on;
        self.takeover = on;
        if on && self.state == State::Backup {
            self.become_master(now, Reason::Takeover);
            return true;
        }
        changed
    }

    /// Whether a takeover is in force.
    pub fn takeover(&self) -> bool {
        self.takeover
    }

    /// Whether resource groups still stop here after this router lost
    /// MASTER: a Backup sends releasing adverts meanwhile (module docs).
    pub fn set_releasing(&mut self, on: bool, now: Instant) {
        if self.releasing == on {
            return;
        }
        self.releasing = on;
        self.release_timer = None;
        if on && self.state == State::Backup {
            self.send_releasing(now);
        }
    }

    /// Whether releasing adverts are asked for ([`Router::set_releasing`]).
    pub fn releasing(&self) -> bool {
        self.releasing
    }

    /// Whether this master waits for its peer to release the resource
    /// groups (module docs).
    pub fn awaiting_peer(&self) -> bool {
        self.awaiting_until.is_some()
    }

    fn send_releasing(&mut self, now: Instant) {
        self.actions
            .push_back(Action::SendAdvert(self.advert(PRIORITY_RELEASING)));
        self.release_timer = Some(now + self.config.advert_interval);
    }

    /// Reload: a new configured priority (1..=254; an address owner's
    /// 255 is identity and needs a new instance). Used from the next
    /// advert, like [`Router::set_priority_delta`].
    pub fn set_priority(&mut self, priority: u8) -> Result<(), ConfigError> {
        if priority == 0 || priority == PRIORITY_OWNER || self.is_owner() {
            return Err(ConfigError::Priority);
        }
        self.config.priority = priority;
        Ok(())
    }

    /// Reload: a new list of virtual addresses (same family). A master
    /// removes the ones gone, adds and announces the new ones; the next
    /// advert carries the new list.
    pub fn set_virtual_addresses(
        &mut self,
        addresses: Vec<IpAddr>,
        _now: Instant,
    ) -> Result<(), ConfigError> {
        let mut config = self.config.clone();
        config.virtual_addresses = addresses;
        config.validate()?;
        let new = Addresses::from_ip_addrs(&config.virtual_addresses).ok_or(ConfigError::Family)?;
        if self.state == State::Master {
            let old = &self.config.virtual_addresses;
            let gone: Vec<IpAddr> = old
                .iter()
                .filter(|a| !config.virtual_addresses.contains(a))
                .copied()
                .collect();
            let added: Vec<IpAddr> = config
                .virtual_addresses
                .iter()
                .filter(|a| !old.contains(a))
                .copied()
                .collect();
            if !gone.is_empty() {
                self.actions
                    .push_back(Action::RemoveAddresses { addresses: gone });
            }
            if !added.is_empty() {
                self.actions.push_back(Action::AddAddresses {
                    addresses: added.clone(),
                    accept: config.accept_mode || self.is_owner(),
                });
                if config.gratuitous.repeat > 0 {
                    self.actions.push_back(Action::SendGratuitous {
                        addresses: added,
                        count: config.gratuitous.repeat,
                    });
                }
            }
        }
        self.config = config;
        self.addresses = new;
        Ok(())
    }

    /// An advert that passed [`crate::packet::decode`], from `src` (the
    /// IP source: the sender's primary address). RFC 5798 §6.4.2 (Backup)
    /// and §6.4.3 (Master). Adverts for another VRID or version, from the
    /// local primary address (multicast loop) or reaching an owner are
    /// ignored.
    ///
    /// An advert whose interval is below what halb accepts
    /// ([`crate::Version::min_interval_cs`]: Max Adver Int 0) is ignored
    /// too, whether or not the shell decoded it first: it would set
    /// Master_Down_Interval to about zero and let one hostile advert flap
    /// the VIP ([`crate::DecodeError::IntervalTooShort`] is its counter).
    pub fn handle_advert(&mut self, src: IpAddr, advert: &Advert, now: Instant) {
        self.handle_advert_on(0, src, advert, now);
    }

    /// An advert received over path `path` (0: the instance's interface,
    /// as [`Router::handle_advert`]; 1…: [`Config::extra_paths`]; another
    /// index is ignored). `src` is the sender's address on that path: the
    /// equal-priority tie-break compares it with ours on the same path.
    pub fn handle_advert_on(&mut self, path: usize, src: IpAddr, advert: &Advert, now: Instant) {
        self.advert_in(path, src, advert, now);
        #[cfg(debug_assertions)]
        self.check_invariants();
    }

    fn advert_in(&mut self, path: usize, src: IpAddr, advert: &Advert, now: Instant) {
        let own = match path {
            0 => self.config.primary_address,
            p => match self.config.extra_paths.get(p - 1) {
                Some(a) => *a,
                None => return,
            },
        };
        if advert.vrid != self.config.vrid
            || advert.version != self.config.version
            || self.is_owner()
            || src == own
            || advert.interval_cs < advert.version.min_interval_cs()
        {
            return;
        }
        let local = self.priority();
        match self.state {
            State::Backup => {
                self.path_heard(path, now);
                if advert.priority == PRIORITY_RELEASE {
                    // The master released: take over after Skew_Time.
                    self.master_down_timer = Some(now + self.skew_time());
                    self.last_master = Some((now, true));
                    return;
                }
                self.last_master = Some((now, false));
                let deferred = self.preempt_after.is_some_and(|t| now < t) && !self.takeover;
                let preempt = self.config.preempt || self.takeover;
                if !preempt || advert.priority >= local || deferred {
                    self.learn_interval(advert);
                    self.master_down_timer = Some(now + self.master_down_interval());
                }
                // Else: preempt a lower-priority master: discard, and let
                // Master_Down_Timer run out.
            }
            State::Master => {
                if advert.priority == PRIORITY_RELEASE {
                    self.send_advert(now);
                    if self.awaiting_until.take().is_some() {
                        self.actions.push_back(Action::PeerReleased);
                    }
                } else if advert.priority > local || (advert.priority == local && src > own) {
                    self.learn_interval(advert);
                    self.become_backup(now, Reason::HigherPriority);
                    self.path_heard(path, now);
                } else if self.awaiting_until.is_some() {
                    // The previous master still stops its groups.
                    self.awaiting_until = Some(now + self.master_down_interval());
                } else if self.config.gratuitous.on_lower_priority
                    && self
                        .last_lower_garp
                        .map_or(true, |t| now >= t + self.config.advert_interval)
                {
                    // Discarded (RFC), but a split brain is healing:
                    // re-announce so clients converge on us.
                    self.last_lower_garp = Some(now);
                    self.actions.push_back(Action::SendGratuitous {
                        addresses: self.config.virtual_addresses.clone(),
                        count: self.config.gratuitous.repeat,
                    });
                }
            }
            State::Initialize | State::Fault => {}
        }
    }

    /// Fires the timers due at `now`: Adver_Timer (Master),
    /// Master_Down_Timer (Backup), the gratuitous ARP schedule (Master).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.timeout(now);
        #[cfg(debug_assertions)]
        self.check_invariants();
    }

    fn timeout(&mut self, now: Instant) {
        match self.state {
            State::Backup => {
                if self.master_down_timer.is_some_and(|t| t <= now) {
                    self.become_master(now, Reason::MasterDown);
                } else {
                    if self.releasing && self.release_timer.is_some_and(|t| t <= now) {
                        self.send_releasing(now);
                    }
                    self.paths_timeout(now);
                }
            }
            State::Master => {
                if self.adver_timer.is_some_and(|t| t <= now) {
                    self.send_advert(now);
                }
                if self.awaiting_until.is_some_and(|t| t <= now) {
                    self.awaiting_until = None;
                    self.actions.push_back(Action::PeerReleased);
                }
                if let Some((t, phase)) = self.garp_timer {
                    if t <= now {
                        let g = &self.config.gratuitous;
                        let count = match phase {
                            GarpPhase::Second => g.repeat,
                            GarpPhase::Refresh => g.refresh_repeat,
                        };
                        self.garp_timer = g.refresh.map(|r| (now + r, GarpPhase::Refresh));
                        self.actions.push_back(Action::SendGratuitous {
                            addresses: self.config.virtual_addresses.clone(),
                            count,
                        });
                    }
                }
            }
            State::Initialize | State::Fault => {}
        }
    }

    /// The next action for the shell, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Router::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.adver_timer,
            self.master_down_timer,
            self.garp_timer.map(|(t, _)| t),
            self.release_timer,
            self.awaiting_until,
            self.path_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Each path's state and its last advert in this Backup spell (path 0
    /// first; see the module documentation).
    pub fn paths(&self) -> impl Iterator<Item = (PathState, Option<Instant>)> + '_ {
        self.paths.iter().map(|p| (p.state, p.heard))
    }

    fn watching_paths(&self) -> bool {
        self.paths.len() > 1 && self.state == State::Backup
    }

    /// When path `p` has been silent for Master_Down_Interval.
    fn path_due(&self, p: &PathWatch) -> Option<Instant> {
        p.heard
            .or(self.backup_since)
            .map(|t| t + self.master_down_interval())
    }

    /// The next path to time out: an alive one, or an unknown one while
    /// another is alive (a dead one stays dead until heard).
    fn path_deadline(&self) -> Option<Instant> {
        if !self.watching_paths() {
            return None;
        }
        let any_alive = self.paths.iter().any(|p| p.state == PathState::Alive);
        self.paths
            .iter()
            .filter(|p| match p.state {
                PathState::Alive => true,
                PathState::Unknown => any_alive,
                PathState::Dead => false,
            })
            .filter_map(|p| self.path_due(p))
            .min()
    }

    fn path_heard(&mut self, path: usize, now: Instant) {
        if !self.watching_paths() {
            return;
        }
        if let Some(p) = self.paths.get_mut(path) {
            p.heard = Some(now);
            let from = p.state;
            if from != PathState::Alive {
                p.state = PathState::Alive;
                self.actions.push_back(Action::PathChange {
                    path,
                    from,
                    to: PathState::Alive,
                });
            }
        }
    }

    /// Alive paths silent for Master_Down_Interval are dead; so are
    /// unknown ones while another path is alive.
    fn paths_timeout(&mut self, now: Instant) {
        if !self.watching_paths() {
            return;
        }
        let due: Vec<bool> = self
            .paths
            .iter()
            .map(|p| self.path_due(p).is_some_and(|t| t <= now))
            .collect();
        let alive_left = self
            .paths
            .iter()
            .zip(&due)
            .any(|(p, d)| p.state == PathState::Alive && !d);
        for (path, d) in due.into_iter().enumerate() {
            let Some(p) = self.paths.get_mut(path) else {
                continue;
            };
            let dies = d
                && match p.state {
                    PathState::Alive => true,
                    PathState::Unknown => alive_left,
                    PathState::Dead => false,
                };
            if dies {
                let from = p.state;
                p.state = PathState::Dead;
                self.actions.push_back(Action::PathChange {
                    path,
                    from,
                    to: PathState::Dead,
                });
            }
        }
    }

    /// Out of Backup: nothing is watched; every known path becomes
    /// unknown (said, so that the log and `halb list` follow).
    fn forget_paths(&mut self) {
        self.backup_since = None;
        if self.paths.len() < 2 {
            return;
        }
        for (path, p) in self.paths.iter_mut().enumerate() {
            p.heard = None;
            if p.state != PathState::Unknown {
                let from = p.state;
                p.state = PathState::Unknown;
                self.actions.push_back(Action::PathChange {
                    path,
                    from,
                    to: PathState::Unknown,
                });
            }
        }
    }

    /// The rules of the paths (debug builds, after every input).
    #[cfg(debug_assertions)]
    fn check_invariants(&self) {
        assert_eq!(self.paths.len(), 1 + self.config.extra_paths.len());
        if !self.watching_paths() {
            assert!(
                self.paths
                    .iter()
                    .all(|p| p.state == PathState::Unknown && p.heard.is_none()),
                "paths are watched only in Backup with two or more: {:?}",
                self.paths
            );
        } else {
            assert!(self.backup_since.is_some(), "a Backup spell has a start");
            for p in &self.paths {
                assert!(
                    p.state != PathState::Alive || p.heard.is_some(),
                    "an alive path was heard: {p:?}"
                );
            }
        }
    }

    /// Sync group: become master now (from Backup only).
    pub(crate) fn force_master(&mut self, now: Instant) {
        if self.state == State::Backup {
            self.become_master(now, Reason::SyncGroup);
        }
    }

    /// Sync group: step down to Backup (from Master only).
    pub(crate) fn force_backup(&mut self, now: Instant) {
        if self.state == State::Master {
            self.become_backup(now, Reason::SyncGroup);
        }
    }

    /// Sync group: go to Fault (from Backup or Master).
    pub(crate) fn force_fault(&mut self) {
        if matches!(self.state, State::Backup | State::Master) {
            self.enter_fault(Reason::SyncGroup);
        }
    }

    /// Sync group: leave a Fault the group imposed, if the link is up.
    pub(crate) fn release_fault(&mut self, now: Instant) {
        if self.state == State::Fault && self.link_up {
            self.startup(now, Reason::SyncGroup);
        }
    }

    fn learn_interval(&mut self, advert: &Advert) {
        if self.config.version == Version::V3 {
            // handle_advert ignored an interval below the smallest one
            // (an advertised 0 would make Master_Down_Interval 0).
            let cs = u64::from(advert.interval_cs.max(crate::packet::MIN_V3_INTERVAL_CS));
            self.master_adver_interval = Duration::from_millis(cs * 10);
        }
    }

    fn send_advert(&mut self, now: Instant) {
        self.actions
            .push_back(Action::SendAdvert(self.advert(self.priority())));
        self.adver_timer = Some(now + self.config.advert_interval);
    }

    fn become_master(&mut self, now: Instant, reason: Reason) {
        // A live master was there (preempted or taken over): it may still
        // run resource groups; wait for it. Not after its priority-0
        // release, nor after silence (dead).
        let live = self.last_master.is_some_and(|(t, released)| {
            !released && now.saturating_duration_since(t) < self.master_down_interval()
        });
        let awaiting = self.state == State::Backup && live;
        self.clear_timers();
        self.last_master = None;
        self.set_state(State::Master, reason);
        if awaiting {
            self.awaiting_until = Some(now + self.master_down_interval());
        }
        self.send_advert(now);
        self.actions.push_back(Action::AddAddresses {
            addresses: self.config.virtual_addresses.clone(),
            accept: self.config.accept_mode || self.is_owner(),
        });
        let g = &self.config.gratuitous;
        if g.repeat > 0 {
            self.actions.push_back(Action::SendGratuitous {
                addresses: self.config.virtual_addresses.clone(),
                count: g.repeat,
            });
        }
        self.garp_timer = match (g.delay, g.refresh) {
            (Some(d), _) => Some((now + d, GarpPhase::Second)),
            (None, Some(r)) => Some((now + r, GarpPhase::Refresh)),
            (None, None) => None,
        };
        self.last_lower_garp = None;
    }

    fn become_backup(&mut self, now: Instant, reason: Reason) {
        let was_master = self.state == State::Master;
        self.clear_timers();
        if was_master {
            self.remove_addresses();
        }
        self.set_state(State::Backup, reason);
        if self.backup_since.is_none() {
            self.backup_since = Some(now);
        }
        self.master_down_timer = Some(now + self.master_down_interval());
        self.preempt_after = Some(now + self.config.preempt_delay);
        self.last_master = None;
        if self.releasing {
            self.send_releasing(now);
        }
    }

    fn enter_fault(&mut self, reason: Reason) {
        if self.state == State::Master {
            // As keepalived leaving MASTER for FAULT: a priority-0 advert,
            // so the backup takes over after Skew_Time rather than after
            // Master_Down_Interval (a failed track_script, `halb standby`;
            // on a dead link it goes nowhere, harmlessly).
            self.actions
                .push_back(Action::SendAdvert(self.advert(PRIORITY_RELEASE)));
            self.remove_addresses();
        }
        self.clear_timers();
        self.set_state(State::Fault, reason);
    }

    fn remove_addresses(&mut self) {
        self.actions.push_back(Action::RemoveAddresses {
            addresses: self.config.virtual_addresses.clone(),
        });
    }

    fn clear_timers(&mut self) {
        self.adver_timer = None;
        self.master_down_timer = None;
        self.garp_timer = None;
        self.release_timer = None;
        self.awaiting_until = None;
    }

    fn set_state(&mut self, to: State, reason: Reason) {
        let from = self.state;
        self.state = to;
        self.actions
            .push_back(Action::StateChange { from, to, reason });
        if from == State::Backup && to != State::Backup {
            self.forget_paths();
        }
    }
}

#[cfg(test)]
mod tests;
