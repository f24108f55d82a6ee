//! The network shell of halb's VRRP.
//!
//! [`spawn`] starts one dedicated thread (raised to SCHED_RR when the
//! process may, so adverts keep their deadlines on a loaded machine) with
//! its own current-thread tokio runtime. It owns every instance: the sans-IO
//! [`halb_vrrp::SyncGroup`] (a lone instance is a group of one), its raw
//! sockets, its VIPs (over [`halb_netlink`]), gratuitous ARP / unsolicited
//! NA, link events. The daemon talks to it through a [`VrrpHandle`]:
//! tracking results in, state changes out, a status snapshot for
//! `halb list`, reload and an orderly shutdown (priority-0 advert, VIPs
//! removed, sysctls restored).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod accept;
mod engine;
pub mod frames;
pub mod sched;
pub mod sock;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use halb_vrrp::{Auth, PathState, State, Version};
use tokio::sync::{mpsc, oneshot};

/// One virtual address and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipSpec {
    /// The address.
    pub address: IpAddr,
    /// Prefix length (`/24`; /32 or /128 when not given).
    pub prefix_len: u8,
    /// Interface, when not the instance's.
    pub interface: Option<String>,
    /// IPv4 label (`eth0:vip`).
    pub label: Option<String>,
}

/// Gratuitous ARP / NA on becoming master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GarpSpec {
    /// Messages per address per burst.
    pub count: u32,
    /// Between two messages of a burst.
    pub interval: Duration,
    /// The second burst after becoming master; `None`: none.
    pub delay: Option<Duration>,
    /// Refresh period while master; `None`: off.
    pub refresh: Option<Duration>,
}

impl Default for GarpSpec {
    fn default() -> Self {
        GarpSpec {
            count: 5,
            interval: Duration::from_millis(10),
            delay: Some(Duration::from_secs(5)),
            refresh: None,
        }
    }
}

/// One more path of an instance (halb to halb): adverts also go over
/// `interface`, unicast to `unicast_peer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSpec {
    /// The link.
    pub interface: String,
    /// Our address on it; `None`: the interface's first of the family.
    pub unicast_source: Option<IpAddr>,
    /// The peer's address on it.
    pub unicast_peer: IpAddr,
}

/// One `[[vrrp_instance]]`, resolved by the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// Unique name.
    pub name: String,
    /// Where adverts go and VIPs are added.
    pub interface: String,
    /// VRID.
    pub vrid: u8,
    /// Protocol version.
    pub version: Version,
    /// Configured priority.
    pub priority: u8,
    /// Advertisement interval.
    pub advert_interval: Duration,
    /// Preempt mode.
    pub preempt: bool,
    /// Preempt delay.
    pub preempt_delay: Duration,
    /// One advert at startup (halb-to-halb; for instances resource groups
    /// follow: see `halb_vrrp::Config::announce_at_startup`).
    pub announce_at_startup: bool,
    /// Accept mode.
    pub accept: bool,
    /// Virtual addresses.
    pub vips: Vec<VipSpec>,
    /// Unicast mode: our source address.
    pub unicast_source: Option<IpAddr>,
    /// Unicast mode: the peers.
    pub unicast_peers: Vec<IpAddr>,
    /// Redundant paths besides `interface` (HMAC auth required: the
    /// config checks it).
    pub paths: Vec<PathSpec>,
    /// Authentication in the advert (none, or v2 PASS).
    pub auth: Auth,
    /// halb-to-halb HMAC-SHA256 trailer ([`halb_vrrp::hmac_auth`]):
    /// the key and the replay window.
    pub hmac: Option<(Vec<u8>, u32)>,
    /// Gratuitous ARP / NA.
    pub garp: GarpSpec,
    /// Interfaces whose link down means Fault (the instance's own
    /// interface always counts).
    pub track_interfaces: Vec<String>,
    /// Director that is also a real server: on backup the VIPs sit on
    /// `lo` and ARP is tamed on the outward interface.
    pub vip_on_loopback_when_backup: bool,
}

impl InstanceSpec {
    /// Whether the two differ only in what a running instance can take
    /// in place (priority, VIPs).
    fn same_identity(&self, other: &InstanceSpec) -> bool {
        let strip = |s: &InstanceSpec| {
            let mut s = s.clone();
            s.priority = 0;
            s.vips.clear();
            s
        };
        strip(self) == strip(other)
            && (self.priority == 255) == (other.priority == 255)
            && self.vips.first().map(|v| v.address.is_ipv6())
                == other.vips.first().map(|v| v.address.is_ipv6())
            && self.vips.iter().all(|a| {
                other
                    .vips
                    .iter()
                    .find(|b| b.address == a.address)
                    .map_or(true, |b| b == a)
            })
    }
}

/// `[[vrrp_sync_group]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// Name.
    pub name: String,
    /// Member instance names.
    pub instances: Vec<String>,
}

/// Everything VRRP runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spec {
    /// Instances.
    pub instances: Vec<InstanceSpec>,
    /// Sync groups.
    pub groups: Vec<GroupSpec>,
}

/// A state change, for notify hooks and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Instance name.
    pub instance: String,
    /// Its sync group, if any.
    pub group: Option<String>,
    /// The new state.
    pub state: State,
    /// Effective priority now.
    pub priority: u8,
    /// Whether the whole group reached `state` with this change (for
    /// the GROUP notify: sent once per group transition).
    pub group_settled: bool,
    /// A master that waits for its peer to release the resource groups
    /// (`halb_vrrp::Router::awaiting_peer`); an event with the same state
    /// and `false` follows once the peer released.
    pub awaiting_peer: bool,
    /// Not a state change but a path's: the instance's `state` is
    /// unchanged.
    pub path: Option<PathEvent>,
}

/// A path of an instance changed (see `halb_vrrp::router`'s redundant
/// paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathEvent {
    /// The path's interface (path 0: the instance's).
    pub interface: String,
    /// The peer's address on it, when configured (unicast).
    pub peer: Option<IpAddr>,
    /// Before.
    pub from: PathState,
    /// Now.
    pub to: PathState,
}

/// One path as `halb list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStatus {
    /// Interface.
    pub interface: String,
    /// The peer's address on it (unicast), if any.
    pub peer: Option<IpAddr>,
    /// "alive", "dead", "unknown" (not Backup: a master hears no adverts).
    pub state: &'static str,
    /// Milliseconds since its last advert, in this Backup spell.
    pub last_heard_ms: Option<u64>,
}

/// One instance as `halb list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    /// Name.
    pub name: String,
    /// Interface.
    pub interface: String,
    /// VRID.
    pub vrid: u8,
    /// 2 or 3.
    pub version: u8,
    /// "MASTER", "BACKUP", "FAULT", "INIT".
    pub state: &'static str,
    /// Configured priority.
    pub priority: u8,
    /// Priority in use (tracking applied).
    pub effective_priority: u8,
    /// The master's address (ours when master), if known.
    pub master: Option<IpAddr>,
    /// Our primary address.
    pub primary: Option<IpAddr>,
    /// VIPs as configured (`192.0.2.100/24`).
    pub vips: Vec<String>,
    /// Sync group.
    pub group: Option<String>,
    /// Why in Fault (tracked links, scripts, ping).
    pub faults: Vec<String>,
    /// Adverts sent.
    pub adverts_sent: u64,
    /// Adverts received and accepted.
    pub adverts_received: u64,
    /// Transitions to MASTER since the instance was created.
    pub became_master: u64,
    /// Packets dropped, by reason.
    pub drops: BTreeMap<String, u64>,
    /// v3 adverts accepted although their address list differs from the
    /// configured one (RFC 5798 §7.1; v2 drops them as `address_list`).
    pub address_mismatches: u64,
    /// `halb takeover` in force (priority 254).
    pub takeover: bool,
    /// Master: waiting for the peer to release its resource groups.
    pub awaiting_peer: bool,
    /// Backup: resource groups still stop here (releasing adverts sent).
    pub releasing: bool,
    /// With redundant paths: each path, the instance's interface first;
    /// empty with one path.
    pub paths: Vec<PathStatus>,
}

/// keepalived's state names.
pub fn state_name(s: State) -> &'static str {
    match s {
        State::Initialize => "INIT",
        State::Backup => "BACKUP",
        State::Master => "MASTER",
        State::Fault => "FAULT",
    }
}

/// Errors starting VRRP.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Starting the thread or its runtime failed.
    #[error("VRRP thread: {0}")]
    Thread(#[from] std::io::Error),
    /// An instance could not be set up.
    #[error("vrrp_instance {instance:?}: {message}")]
    Instance {
        /// Name.
        instance: String,
        /// Why.
        message: String,
    },
    /// Netlink.
    #[error(transparent)]
    Netlink(#[from] halb_netlink::Error),
    /// The thread is gone.
    #[error("the VRRP thread has stopped")]
    Stopped,
}

pub(crate) enum Command {
    PriorityDelta {
        instance: String,
        delta: i32,
    },
    Fault {
        instance: String,
        key: String,
        faulty: bool,
    },
    Takeover {
        instance: String,
        on: bool,
    },
    Releasing {
        instance: String,
        on: bool,
    },
    Reload(Spec, oneshot::Sender<Result<(), String>>),
    /// Answered by the thread's loop as it goes round: a hung loop never
    /// answers (the daemon's systemd watchdog).
    Heartbeat(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// The daemon's handle on the VRRP thread.
#[derive(Debug)]
pub struct VrrpHandle {
    commands: mpsc::UnboundedSender<Command>,
    /// Published by the VRRP thread after every input; read without a
    /// lock, so no reader (control socket, dashboard, /metrics) can delay
    /// the thread.
    status: Arc<arc_swap::ArcSwap<Vec<InstanceStatus>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl VrrpHandle {
    /// Tracking: `instance`'s priority is the configured one plus `delta`.
    pub fn set_priority_delta(&self, instance: &str, delta: i32) {
        let _ = self.commands.send(Command::PriorityDelta {
            instance: instance.to_owned(),
            delta,
        });
    }

    /// Tracking: the fault `key` (a script with weight 0, ping nodes) is
    /// set or cleared; any fault puts the instance in Fault.
    pub fn set_fault(&self, instance: &str, key: &str, faulty: bool) {
        let _ = self.commands.send(Command::Fault {
            instance: instance.to_owned(),
            key: key.to_owned(),
            faulty,
        });
    }

    /// `halb takeover` (`on`) or its end: `instance` and the rest of its
    /// sync group hold priority 254 and become master now (see
    /// [`halb_vrrp::Router::set_takeover`]).
    pub fn set_takeover(&self, instance: &str, on: bool) {
        let _ = self.commands.send(Command::Takeover {
            instance: instance.to_owned(),
            on,
        });
    }

    /// Resource groups following `instance` still stop here after it lost
    /// MASTER (`on`): releasing adverts, so that the peer waits before it
    /// starts them (see `halb_vrrp::Router::set_releasing`).
    pub fn set_releasing(&self, instance: &str, on: bool) {
        let _ = self.commands.send(Command::Releasing {
            instance: instance.to_owned(),
            on,
        });
    }

    /// The state of every instance.
    pub fn status(&self) -> Vec<InstanceStatus> {
        Vec::clone(&self.status.load())
    }

    /// Applies a new configuration: priority and VIP changes in place,
    /// other changes by recreating the instance (and its group).
    pub async fn reload(&self, spec: Spec) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Reload(spec, tx))
            .map_err(|_| Error::Stopped)?;
        rx.await
            .map_err(|_| Error::Stopped)?
            .map_err(|message| Error::Instance {
                instance: "reload".into(),
                message,
            })
    }

    /// A heartbeat: the receiver gets `()` once the VRRP thread's loop
    /// has gone round (between two timers, adverts or commands), and is
    /// closed if the thread has ended. Nothing waits on it: the caller
    /// looks with `try_recv` (the daemon feeds systemd's watchdog only
    /// while the last heartbeat came back, so a hung VRRP thread gets the
    /// daemon restarted).
    pub fn heartbeat(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(Command::Heartbeat(tx));
        rx
    }

    /// [`VrrpHandle::reload`] without waiting for the outcome (it is
    /// logged by the VRRP thread).
    pub fn reload_detached(&self, spec: Spec) {
        let (tx, _rx) = oneshot::channel();
        let _ = self.commands.send(Command::Reload(spec, tx));
    }

    /// Releases every instance (priority-0 advert, VIPs removed, sysctls
    /// restored) and joins the thread.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
        let t = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = t {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// Starts the VRRP thread with `spec`. Fails if an instance cannot be set
/// up (no such interface, no primary address, sockets refused).
pub fn spawn(spec: Spec) -> Result<(VrrpHandle, mpsc::UnboundedReceiver<Event>), Error> {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let status = Arc::new(arc_swap::ArcSwap::from_pointee(Vec::new()));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let st = status.clone();
    let thread = std::thread::Builder::new()
        .name("halb-vrrp".into())
        .spawn(move || {
            sched::raise_priority();
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(Error::Thread(e)));
                    return;
                }
            };
            rt.block_on(engine::run(spec, cmd_rx, ev_tx, st, ready_tx));
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((
            VrrpHandle {
                commands: cmd_tx,
                status,
                thread: Mutex::new(Some(thread)),
            },
            ev_rx,
        )),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(Error::Stopped)
        }
    }
}
