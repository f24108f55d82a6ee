//! The daemon's shell: one task that owns the director core
//! (`halb_director`), the data planes, the VRRP thread's handle and the
//! alert sender, and carries out what the director decides.
//!
//! It selects over signals, control requests (the control socket and the
//! dashboard ask through a channel), finished probes, VRRP state changes
//! and the director's next deadline; after each input it drains the
//! director's actions. It decides nothing itself: every rule that joins
//! health, tracking, alerts, the sync daemon and reloads is in the core,
//! where the simulation tests drive it.

use crate::cli::EXIT_CONFIG;
use crate::control::{self, Asker, Msg, Reader, Request, Response, Status};
use crate::{http, planes, vrrp};
use anyhow::Context;
use halb_config::{Config, SyncRole};
use halb_director::{Action, ApplyReason, Director};
use halb_health::{NetProber, ProbeId, ProbeOutcome, Prober};
use halb_proxy::{ProxyDataPlane, ProxyOptions};
use halb_table::{ApplyReport, DataPlane};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Where the running config came from, so a reload can read it again.
#[derive(Debug)]
pub enum Source {
    /// A file, what its last load can give the next one, and the text
    /// running (its digest is what `[global.sync]` compares).
    File(PathBuf, Box<halb_config::Loader>, String),
    /// An embedded config (`halb demo`): reload has nothing to re-read.
    Embedded(&'static str),
}

/// Everything the daemon's one task owns.
struct Shell {
    source: Source,
    director: Director,
    plane: planes::Planes,
    sender: halb_alert::Sender,
    vrrp: Option<vrrp::Running>,
    vrrp_events: Option<mpsc::UnboundedReceiver<halb_vrrp_net::Event>>,
    /// The quorum provider's events (`[global.quorum]`: the Corosync
    /// thread of `halb_quorum::corosync`).
    quorum_events: Option<mpsc::Receiver<halb_quorum::Event>>,
    probes: JoinSet<(ProbeId, ProbeOutcome)>,
    prober: Arc<NetProber>,
    /// Notify hooks still running (reaped as they end).
    hooks: JoinSet<()>,
    /// Where the operators' overrides are saved (`SOCKET.state` beside the
    /// control socket the daemon started with).
    state_path: PathBuf,
    /// Resource agent calls in flight.
    agents: JoinSet<(halb_resource::OpId, halb_resource::AgentResult)>,
    /// How agents are called (OCF root, init.d, heartbeat's resource.d).
    agent_runner: halb_resource::agent::Agents,
    /// A reload was applied: the data planes check what changed behind
    /// halb's back once it is answered.
    verify_due: bool,
    /// While a reload is carried out: the report of its apply, and
    /// whether VRRP took the new config.
    reload_report: Option<ApplyReport>,
    vrrp_reloaded: Option<bool>,
    /// The director's part of the status, for the readers.
    published: watch::Sender<Arc<Status>>,
    /// Reloads counted, for the status and /metrics.
    reloads: control::ReloadStats,
    /// The VRRP handle, for the readers.
    vrrp_slot: Arc<std::sync::Mutex<Option<Arc<halb_vrrp_net::VrrpHandle>>>>,
    /// This daemon's hold on its listen addresses (last: let go of after
    /// the data planes closed their listeners).
    locks: Option<crate::listenlock::ListenLocks>,
    /// systemd (`Type=notify`): READY, RELOADING, STOPPING, WATCHDOG.
    notify: crate::systemd::Notifier,
    /// systemd's file-descriptor store (fdstore.rs), kept equal to the
    /// listening sockets after each reload.
    fd_store: crate::fdstore::FdStore,
    /// `[global.sync]`: the channel's server, the drift tracker.
    sync: Option<crate::sync::Running>,
}

/// How long a reader waits for the daemon's task to publish a fresh
/// status before it answers with the last one (a busy task, a long IPVS
/// apply, never holds a reader longer).
pub const FRESH_WAIT: Duration = Duration::from_millis(250);

impl Shell {
    /// Carries out every action the director has queued.
    fn drain(&mut self) {
        while let Some(action) = self.director.poll_action() {
            self.execute(action);
        }
    }

    fn execute(&mut self, action: Action) {
        match action {
            Action::StartProbe { probe, spec } => {
                // Bounded by its own deadline, taken now (not when the
                // runtime first polls it): see halb_health::driver.
                let timeout = spec.timing.timeout;
                let deadline = tokio::time::Instant::now() + timeout;
                let run = self.prober.probe(spec);
                self.probes.spawn(async move {
                    let outcome =
                        tokio::time::timeout_at(deadline, run)
                            .await
                            .unwrap_or_else(|_| {
                                ProbeOutcome::down(format!("timed out after {timeout:?}"))
                            });
                    (probe, outcome)
                });
            }
            Action::SetGlobal(global) => self.plane.set_global(&global),
            Action::SetSyncRole(role) => {
                self.plane.set_sync_role(match role {
                    SyncRole::Master => halb_ipvs::SyncState::Master,
                    SyncRole::Backup => halb_ipvs::SyncState::Backup,
                });
            }
            Action::Apply { table, reason } => {
                let report = self.plane.apply(&table);
                match reason {
                    ApplyReason::Reload => {
                        self.fd_store.sync(self.plane.listener_fds());
                        let r = self.reload_report.get_or_insert_with(ApplyReport::default);
                        r.errors.extend(report.errors);
                        r.warnings.extend(report.warnings);
                    }
                    ApplyReason::Health | ApplyReason::SyncRole | ApplyReason::Operator => {
                        if reason == ApplyReason::Health {
                            self.director.handle_applied(Instant::now());
                        }
                        let what = if reason == ApplyReason::Health {
                            "applying health changes"
                        } else if reason == ApplyReason::Operator {
                            "applying an operator's override"
                        } else {
                            "switching the sync daemon"
                        };
                        for e in report.errors.iter().chain(&report.warnings) {
                            tracing::error!("{what}: {e}");
                        }
                    }
                }
            }
            Action::SetPriorityDelta { instance, delta } => {
                if let Some(v) = &self.vrrp {
                    v.handle.set_priority_delta(&instance, delta);
                }
            }
            Action::SetFault {
                instance,
                key,
                faulty,
            } => {
                if let Some(v) = &self.vrrp {
                    v.handle.set_fault(&instance, &key, faulty);
                }
            }
            Action::SetTakeover { instance, on } => {
                if let Some(v) = &self.vrrp {
                    v.handle.set_takeover(&instance, on);
                }
            }
            Action::SetReleasing { instance, on } => {
                if on {
                    tracing::info!(%instance, "resource groups still stop here: releasing adverts, so that the new master waits for them");
                } else {
                    tracing::info!(%instance, "resource groups stopped here: releasing adverts end");
                }
                if let Some(v) = &self.vrrp {
                    v.handle.set_releasing(&instance, on);
                }
            }
            Action::ReloadVrrp(config) => {
                let result = match &mut self.vrrp {
                    Some(v) => v.reload(&config),
                    None => vrrp::Running::start(&config).map(|r| {
                        if let Some((running, events)) = r {
                            if let Ok(mut slot) = self.vrrp_slot.lock() {
                                *slot = Some(running.handle.clone());
                            }
                            self.vrrp = Some(running);
                            self.vrrp_events = Some(events);
                        }
                    }),
                };
                if let Err(e) = &result {
                    tracing::error!("VRRP reload: {e:#}");
                }
                self.vrrp_reloaded = Some(result.is_ok());
            }
            Action::Alert(a) => self.sender.submit(a),
            Action::RunHook { argv, event } => self.run_hook(argv, event),
            Action::RunAgent(call) => {
                if let Some(f) = self.agent_runner.call(&call) {
                    self.agents.spawn(f);
                }
            }
            Action::ResourceEvent(e) => log_resource_event(&e),
            Action::ResourceReleased { group } => {
                tracing::info!(group = %group, "resource group stopped here");
            }
        }
    }

    /// A VRRP notify hook, as keepalived runs it (no shell, stdin from
    /// /dev/null), through the one process runner; its exit and the
    /// first line of its output are logged. It may outlive the daemon (a
    /// stop hook runs while halb exits), as keepalived's do.
    fn run_hook(&mut self, argv: Vec<String>, event: String) {
        let Some((prog, args)) = argv.split_first() else {
            return;
        };
        let spec = halb_process::Spec {
            program: prog.into(),
            args: args.to_vec(),
            capture: HOOK_OUTPUT,
            outlive: true,
            ..halb_process::Spec::default()
        };
        let prog = prog.clone();
        self.hooks.spawn(async move {
            let o = halb_process::run(&spec).await;
            let said = o.first_line().unwrap_or_default();
            if o.success() {
                tracing::info!(hook = %prog, %event, "notify hook: {} {said}", o.exit);
            } else {
                tracing::warn!(hook = %prog, %event, "notify hook: {} {said}", o.exit);
            }
        });
    }

    /// The director's part of the status (the readers add the live
    /// counters, alerts and VRRP rows).
    fn snapshot(&self) -> Status {
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            dataplane: self.plane.name().to_string(),
            config: match &self.source {
                Source::File(p, ..) => Some(p.clone()),
                Source::Embedded(_) => None,
            },
            uptime_secs: 0,
            services: Vec::new(),
            health: self.director.health_report(),
            health_transitions: self.director.transitions(),
            alerts: halb_alert::AlertStats::default(),
            resources: self.director.resource_status(Instant::now()),
            overrides: self.override_rows(),
            vrrp: Vec::new(),
            held_faults: self
                .director
                .held_faults()
                .into_iter()
                .map(|(instance, fault, waiting_for)| control::HeldFault {
                    instance,
                    fault,
                    waiting_for,
                })
                .collect(),
            reloads: self.reloads.clone(),
            sync_daemon: self.director.sync_role().map(|r| {
                match r {
                    SyncRole::Master => "master",
                    SyncRole::Backup => "backup",
                }
                .to_owned()
            }),
            configured_weights: self.configured_weights(),
            config_sync: self.sync.as_ref().map(|s| s.status()).unwrap_or_default(),
            quorum: self.director.quorum_status(),
        }
    }

    fn configured_weights(&self) -> Vec<control::ConfiguredWeight> {
        let config = self.director.config();
        config
            .services
            .iter()
            .flat_map(|vs| {
                vs.reals.iter().map(|r| control::ConfiguredWeight {
                    service: vs.name.clone(),
                    protocol: vs.protocol,
                    listen: vs.listen,
                    real: r.addr,
                    weight: r.weight,
                })
            })
            .collect()
    }

    fn override_rows(&self) -> Vec<control::OverrideRow> {
        let config = self.director.config();
        self.director
            .overrides()
            .iter()
            .map(|((key, real), what)| control::OverrideRow {
                service: config
                    .services
                    .iter()
                    .find(|s| s.key() == *key)
                    .map_or_else(|| key.to_string(), |s| s.name.clone()),
                protocol: key.protocol,
                listen: key.listen,
                real: *real,
                what: *what,
            })
            .collect()
    }

    fn publish(&mut self) {
        self.published.send_replace(Arc::new(self.snapshot()));
    }

    /// The whole status, as a reader sees it (for the signal dumps).
    fn status(&self, reader: &Reader) -> Status {
        let mut st = reader.status();
        st.health = self.director.health_report();
        st.health_transitions = self.director.transitions();
        st
    }

    fn handle(&mut self, req: Request) -> Response {
        let response = match req {
            // Readers answer these themselves (control::Asker).
            Request::Status | Request::Connections | Request::Handover => Response::Error {
                message: "status is read from the published snapshot".into(),
            },
            Request::Reload => {
                let r = self.reload();
                self.count_reload(&r);
                r
            }
            Request::Resource(r) => self.resource_command(r),
            Request::Standby { on } => self.standby(on),
            Request::Takeover { instance } => self.takeover(instance),
            Request::Reset => self.reset(),
            Request::Real {
                service,
                real,
                action,
            } => self.real_command(service, real, action),
        };
        // A client that reads the status after its reload sees it.
        self.publish();
        response
    }

    /// `halb weight|drain|disable|enable SERVICE REAL`.
    fn real_command(
        &mut self,
        service: String,
        real: String,
        action: halb_director::overrides::RealAction,
    ) -> Response {
        use halb_director::overrides::RealAction as A;
        let what = match action {
            A::Weight(n) => format!("weight {n} for {real} of {service}"),
            A::Drain => {
                format!("drain {real} of {service} (weight 0: established connections go on)")
            }
            A::Disable => format!("disable {real} of {service} (out of the table)"),
            A::Enable => format!(
                "enable {real} of {service} (back to its configured or health-driven weight)"
            ),
        };
        match self.director.handle_command(
            halb_director::Command::Real {
                service,
                real,
                action,
            },
            Instant::now(),
        ) {
            Ok(()) => {
                tracing::info!("operator: {what}");
                self.save_state();
                Response::Done { message: what }
            }
            Err(e) => Response::Error {
                message: e.to_string(),
            },
        }
    }

    /// The operators' overrides, for the next run (`SOCKET.state` next to
    /// the control socket, as HAProxy's server-state-file).
    fn save_state(&self) {
        let path = &self.state_path;
        let saved = StateFile {
            overrides: self.director.overrides().to_saved(),
            roles: self.director.role_override().to_saved(),
        };
        let written = serde_json::to_vec_pretty(&saved)
            .map_err(std::io::Error::other)
            .and_then(|b| write_private(path, &b));
        if let Err(e) = written {
            tracing::warn!(
                "writing {}: {e} (the overrides will not survive a restart)",
                path.display()
            );
        }
    }

    /// `halb standby` / `halb online`.
    fn standby(&mut self, on: bool) -> Response {
        if self.director.config().vrrp_instances.is_empty() {
            return Response::Error {
                message: "no vrrp_instance in the config: this director holds no VIP to give up or take back"
                    .into(),
            };
        }
        let was = self.director.role_override().clone();
        let _ = self
            .director
            .handle_command(halb_director::Command::Standby(on), Instant::now());
        let took: Vec<String> = was.takeover().iter().cloned().collect();
        let message = match (was.standby(), on) {
            (false, true) if took.is_empty() => "standby: this director gives up its VIPs and resource groups, and takes none back until `halb online`".to_owned(),
            (false, true) => format!("standby: this director gives up its VIPs and resource groups, and takes none back until `halb online` (takeover of {} ended)", took.join(", ")),
            (true, true) => "standby: already in standby".to_owned(),
            (true, false) => "online: this director may be master again (its priority decides)".to_owned(),
            (false, false) if !took.is_empty() => format!("online: takeover of {} ended; the configured priority decides again", took.join(", ")),
            (false, false) => "online: not in standby, no takeover in force".to_owned(),
        };
        let held: Vec<String> = self
            .director
            .held_faults()
            .into_iter()
            .flat_map(|(_, _, groups)| groups)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let message = if on && !held.is_empty() {
            format!(
                "{message}; resource group {} stops here first, then the VIPs go",
                held.join(", ")
            )
        } else {
            message
        };
        tracing::info!("operator: {message}");
        self.save_state();
        Response::Done { message }
    }

    /// `halb reset`.
    fn reset(&mut self) -> Response {
        let reals = self.director.overrides().iter().count();
        let roles = self.director.role_override().clone();
        let _ = self
            .director
            .handle_command(halb_director::Command::Reset, Instant::now());
        let mut ended = Vec::new();
        if reals > 0 {
            ended.push(format!("{reals} real-server override(s)"));
        }
        if roles.standby() {
            ended.push("standby".to_owned());
        }
        if !roles.takeover().is_empty() {
            let names: Vec<&str> = roles.takeover().iter().map(String::as_str).collect();
            ended.push(format!("takeover of {}", names.join(", ")));
        }
        let message = if ended.is_empty() {
            "reset: no runtime override in force".to_owned()
        } else {
            format!(
                "reset: {} ended; config, health and priorities decide again",
                ended.join(", ")
            )
        };
        tracing::info!("operator: {message}");
        self.save_state();
        Response::Done { message }
    }

    /// `halb takeover [INSTANCE]`.
    fn takeover(&mut self, instance: Option<String>) -> Response {
        let r = self.director.handle_command(
            halb_director::Command::Takeover(instance.clone()),
            Instant::now(),
        );
        match r {
            Ok(()) => {
                let names: Vec<String> = self
                    .director
                    .role_override()
                    .takeover()
                    .iter()
                    .cloned()
                    .collect();
                let message = format!(
                    "takeover: {} at priority 254, master now; `halb online` ends it",
                    names.join(", ")
                );
                tracing::info!("operator: {message}");
                self.save_state();
                Response::Done { message }
            }
            Err(e) => {
                tracing::warn!(
                    "operator: takeover {} refused: {e}",
                    instance.as_deref().unwrap_or("(all)")
                );
                Response::Error {
                    message: e.to_string(),
                }
            }
        }
    }

    /// `halb resource …` / `halb maintenance …`.
    fn resource_command(&mut self, r: control::ResourceRequest) -> Response {
        use control::ResourceRequest as R;
        use halb_resource::Command as C;
        let now = Instant::now();
        let (command, what) = match r {
            R::Show { group, member } => {
                return match self.director.resource_history(&group, &member, now) {
                    Some(ops) => Response::Done {
                        message: render_history(&group, &member, &ops),
                    },
                    None => Response::Error {
                        message: format!("no member {member} in a resource group {group}"),
                    },
                }
            }
            R::Cleanup { group, member } => {
                let what = match (&group, &member) {
                    (None, _) => "cleanup of every resource group".to_owned(),
                    (Some(g), None) => format!("cleanup of resource group {g}"),
                    (Some(g), Some(m)) => format!("cleanup of {g}/{m}"),
                };
                (C::Cleanup { group, member }, what)
            }
            R::Restart { group, member } => {
                let what = format!("restart of {group}/{member}");
                (C::Restart { group, member }, what)
            }
            R::Maintenance { group, on } => {
                let what = format!(
                    "maintenance {} for {}",
                    if on { "on" } else { "off" },
                    group.as_deref().map_or_else(
                        || "every resource group".to_owned(),
                        |g| format!("resource group {g}")
                    )
                );
                (C::Maintenance { group, on }, what)
            }
        };
        match self
            .director
            .handle_command(halb_director::Command::Resource(command), now)
        {
            Ok(()) => {
                tracing::info!("operator: {what}");
                Response::Done { message: what }
            }
            Err(e) => Response::Error {
                message: e.to_string(),
            },
        }
    }

    /// A reload, told to systemd: RELOADING=1 before, READY=1 after
    /// (whatever its outcome: the running config is in force either way).
    fn reload(&mut self) -> Response {
        self.notify.reloading();
        let response = self.reload_config();
        self.notify.ready(&match &response {
            Response::Reloaded { .. } => "running: reloaded".to_owned(),
            Response::Rejected { .. } => "running: the last reload was rejected".to_owned(),
            _ => "running: the last reload applied with errors".to_owned(),
        });
        response
    }

    /// Carries out what the sync tracker decided: questions to the
    /// peers, and each peer's change (logged; a difference and its end
    /// alerted by the director).
    fn sync_drain(&mut self) {
        use halb_sync::{Action as A, PeerState as S};
        let Some(s) = &mut self.sync else { return };
        while let Some(a) = s.tracker.poll_action() {
            match a {
                A::Ask { peer } => s.ask_digest(peer),
                A::Changed { peer, from, to } => {
                    let Some(name) = s.peers.get(peer).map(|p| p.name.clone()) else {
                        continue;
                    };
                    // A new reason of an unreachable peer is not a new state.
                    if std::mem::discriminant(&from) != std::mem::discriminant(&to) {
                        if let Some(t) = s.since_unix.get_mut(peer) {
                            *t = Some(crate::sync::unix_now());
                        }
                    }
                    let ours = halb_sync::short(s.tracker.ours()).to_owned();
                    match to {
                        S::InSync { .. } => {
                            let reason = format!(
                                "config sync: {name} runs the same config as {} ({ours})",
                                s.name
                            );
                            if matches!(from, S::Differs { .. }) {
                                tracing::info!("{reason} again");
                            } else {
                                tracing::info!("{reason}");
                            }
                            self.director
                                .handle_config_sync(&name, true, reason, Instant::now());
                        }
                        S::Differs { theirs, .. } => {
                            let reason = format!(
                                "config sync: config differs from {name} (ours {ours}, {name}'s {}): `halb config diff {name}` shows the lines, `halb config push {name}` sends ours",
                                halb_sync::short(&theirs)
                            );
                            tracing::warn!("{reason}");
                            self.director
                                .handle_config_sync(&name, false, reason, Instant::now());
                        }
                        S::Unreachable { reason, .. } => {
                            tracing::warn!(
                                "config sync: cannot compare the config with {name}: {reason}"
                            );
                        }
                        S::Unknown => {}
                    }
                }
            }
        }
    }

    /// A peer answered the tracker's question (or did not).
    fn sync_answer(&mut self, peer: usize, answer: Result<halb_sync::Reply, String>) {
        let Some(s) = &mut self.sync else { return };
        let now = Instant::now();
        match answer {
            Ok(halb_sync::Reply::Digest { digest, .. }) => {
                s.tracker.handle_digest(peer, digest, now)
            }
            Ok(halb_sync::Reply::Error { message }) => s.tracker.handle_failure(peer, message, now),
            Ok(_) => s
                .tracker
                .handle_failure(peer, "an answer that is not a digest".into(), now),
            Err(e) => s.tracker.handle_failure(peer, e, now),
        }
    }

    /// `halb config push` from a peer: the pushed file with this
    /// director's own keys (halb_sync::keep_local), checked as
    /// `halb check-config` does; written and reloaded only if valid.
    fn push(&mut self, from: &str, text: String) -> halb_sync::Reply {
        let name = self
            .sync
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let refused = |message: String| halb_sync::Reply::Pushed {
            name: name.clone(),
            applied: false,
            message,
        };
        let Source::File(path, loader, running) = &self.source else {
            return refused("this director runs an embedded config, not a file".into());
        };
        let path = path.clone();
        if text.len() as u64 > loader.max_size() {
            return refused(format!(
                "{} bytes, over this director's --max-config-size",
                text.len()
            ));
        }
        // What is on disk is what this director keeps its own keys from
        // (the running text if the file cannot be read).
        let local =
            crate::sync::read_bounded(&path, loader.max_size()).unwrap_or_else(|_| running.clone());
        let merged = halb_sync::keep_local(&text, &local).unwrap_or(text);
        let checked = halb_config::parse(&merged, &path)
            .and_then(|c| crate::agents::check(&merged, &path, &c));
        if let Err(errors) = checked {
            let outcome = format!("{name} keeps its running config");
            tracing::error!(
                "config sync: push from {from} refused, the running config stays:\n{}",
                errors.render()
            );
            return refused(errors.render_with_outcome(&outcome));
        }
        if let Err(e) = write_config(&path, &merged) {
            tracing::error!(
                "config sync: push from {from}: writing {}: {e}",
                path.display()
            );
            return refused(format!(
                "halb: writing {}: {e}; {name} keeps its running config\n",
                path.display()
            ));
        }
        tracing::info!(
            "config sync: push from {from} written to {}: reloading",
            path.display()
        );
        let r = self.reload();
        self.count_reload(&r);
        match r {
            Response::Reloaded { summary } => halb_sync::Reply::Pushed {
                name,
                applied: true,
                message: summary,
            },
            Response::Rejected { message } | Response::Error { message } => refused(message),
            other => refused(format!("{other:?}")),
        }
    }

    /// Counts a reload's outcome for the status and /metrics.
    fn count_reload(&mut self, r: &Response) {
        self.reloads.total += 1;
        if matches!(r, Response::Reloaded { .. }) {
            self.reloads.last_success_unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs_f64());
        } else {
            self.reloads.failed += 1;
        }
    }

    /// Re-read the config and hand it to the director, which plans the
    /// change; carry it out. A config that does not validate changes
    /// nothing.
    fn reload_config(&mut self) -> Response {
        let (new, text) = match &mut self.source {
            Source::File(path, loader, _) => match crate::agents::load_with_text(loader, path) {
                Ok((c, text)) => {
                    log_load(loader);
                    (c, text)
                }
                Err(errors) => {
                    tracing::error!(
                        "reload rejected, the running config stays:\n{}",
                        errors.render()
                    );
                    return Response::Rejected {
                        message: errors.render_with_outcome("the running config stays"),
                    };
                }
            },
            Source::Embedded(name) => {
                return Response::Reloaded {
                    summary: format!("running the embedded {name} config; nothing to re-read"),
                }
            }
        };
        // A service another daemon serves is refused like a bad config.
        let claimed = match &mut self.locks {
            Some(l) => l.claim(new.services.iter().map(|s| s.key())),
            None => Ok(()),
        };
        if let Err(e) = claimed {
            tracing::error!("reload rejected, the running config stays: {e:#}");
            return Response::Rejected {
                message: format!("halb: {e:#}\nhalb: the running config stays\n"),
            };
        }
        let instances = new.vrrp_instances.len();
        let plan = self.director.handle_config(new, Instant::now());
        if let Source::File(_, _, running) = &mut self.source {
            if let Some(s) = &mut self.sync {
                s.set_text(&text);
            }
            *running = text;
        }
        if !plan.at_restart.is_empty() {
            tracing::warn!(
                "{} changes take effect at the next restart",
                plan.at_restart.join(", ")
            );
        }
        self.reload_report = None;
        self.vrrp_reloaded = None;
        self.drain();
        if let Some(l) = &mut self.locks {
            let serving = self
                .director
                .config()
                .services
                .iter()
                .map(|s| s.key())
                .collect();
            l.retain(&serving);
        }
        self.verify_due = true;
        let report = self.reload_report.take().unwrap_or_default();
        let mut changes = plan.changes;
        if self.vrrp_reloaded.take() == Some(true) {
            changes.push(format!("VRRP: {instances} instance(s) applied"));
        }
        log_changes(&changes);
        for w in &report.warnings {
            tracing::error!("reload: {w}");
        }
        if report.is_ok() && report.warnings.is_empty() {
            let summary = reload_summary(&changes);
            tracing::info!("{summary}");
            Response::Reloaded { summary }
        } else {
            let message = report
                .errors
                .iter()
                .chain(&report.warnings)
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n");
            tracing::error!("reload applied with errors: {message}");
            Response::Error {
                message: format!("reload applied, but: {message}"),
            }
        }
    }

    /// What follows an answer: after a reload, the data planes' check of
    /// the kernel's table against what halb applied (a read of the whole
    /// IPVS table, which the reload's answer does not wait for; it puts
    /// right, and logs, what was changed behind halb's back).
    fn after_reply(&mut self) {
        if !std::mem::take(&mut self.verify_due) {
            return;
        }
        let report = self.plane.verify();
        for e in report.errors.iter().chain(&report.warnings) {
            tracing::error!("after the reload: {e}");
        }
    }

    /// keepalived's SIGUSR1 (data) and SIGUSR2 (stats) dumps: the state
    /// as `halb list --json` shows it, written next to the control socket.
    fn dump(&self, socket: &Path, stats: bool, reader: &Reader) {
        let name = if stats { "halb.stats" } else { "halb.data" };
        let path = socket.with_file_name(name);
        let status = self.status(reader);
        let body = if stats {
            serde_json::to_vec_pretty(&(&status.services, &status.alerts, &status.vrrp))
        } else {
            serde_json::to_vec_pretty(&status)
        };
        let written = body
            .map_err(std::io::Error::other)
            .and_then(|b| write_private(&path, &b));
        match written {
            Ok(()) => tracing::info!("{} written to {}", name, path.display()),
            Err(e) => tracing::warn!("writing {}: {e}", path.display()),
        }
    }
}

/// The overrides a previous run saved, if any (a missing file is none; a
/// bad one is logged and ignored).
/// The state file (`SOCKET.state`): the operators' overrides, as
/// HAProxy's server-state-file.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct StateFile {
    #[serde(default)]
    overrides: Vec<halb_director::overrides::Saved>,
    /// `halb standby`, `halb takeover`.
    #[serde(default, flatten)]
    roles: halb_director::role_override::Saved,
}

/// What a state file may hold: this version's, or the first one's (a bare
/// list of real-server overrides).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum AnyStateFile {
    Now(StateFile),
    First(Vec<halb_director::overrides::Saved>),
}

fn read_state(path: &Path) -> Option<StateFile> {
    let body = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(
                "reading {}: {e}; no operator overrides restored",
                path.display()
            );
            return None;
        }
    };
    match serde_json::from_slice(&body) {
        Ok(AnyStateFile::Now(s)) => Some(s),
        Ok(AnyStateFile::First(overrides)) => Some(StateFile {
            overrides,
            ..StateFile::default()
        }),
        Err(e) => {
            tracing::warn!("{}: {e}; no operator overrides restored", path.display());
            None
        }
    }
}

/// Writes `body` to `path` (mode 0600) through a new file renamed over
/// it, so a reader never sees half a dump and a symlink is never
/// followed.
fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(body)?;
    f.write_all(b"\n")?;
    std::fs::rename(&tmp, path)
}

/// Writes a pushed config over `path`: a new file beside it (the old
/// one's mode) renamed over it, so the daemon never reads half a file.
fn write_config(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mode = std::fs::metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o7777);
    let tmp = path.with_extension(format!("push.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The largest file this daemon reads (`--max-config-size`).
fn max_file(source: &Source) -> u64 {
    match source {
        Source::File(_, loader, _) => loader.max_size(),
        Source::Embedded(_) => halb_config::DEFAULT_MAX_SIZE,
    }
}

/// Each change of a reload at info level, the first [`LOGGED_CHANGES`] of
/// them (a reload of 1,000 weights is not 1,000 lines); the rest at debug.
fn log_changes(changes: &[String]) {
    for c in changes.iter().take(LOGGED_CHANGES) {
        tracing::info!("reload: {c}");
    }
    if changes.len() > LOGGED_CHANGES {
        tracing::info!(
            "reload: and {} more changes (listed at debug level: HALB_LOG=debug)",
            changes.len() - LOGGED_CHANGES
        );
        for c in &changes[LOGGED_CHANGES..] {
            tracing::debug!("reload: {c}");
        }
    }
}

const LOGGED_CHANGES: usize = 100;

/// How much of the file a load read again.
fn log_load(loader: &halb_config::Loader) {
    let s = loader.stats();
    if s.whole {
        tracing::debug!("config: read as a whole");
    } else {
        tracing::info!(
            "config: {} virtual services, {} unchanged since the last load",
            s.pieces,
            s.reused
        );
    }
}

/// `halb run --config FILE`.
pub fn run_file(
    path: &Path,
    socket: Option<PathBuf>,
    max_config_size: u64,
    takeover: bool,
    fd_store: bool,
) -> anyhow::Result<ExitCode> {
    let mut loader = Box::new(halb_config::Loader::with_max_size(max_config_size));
    let (config, text) = match crate::agents::load_with_text(&mut loader, path) {
        Ok(c) => {
            log_load(&loader);
            c
        }
        Err(errors) => {
            eprint!("{}", errors.render_with_outcome("nothing was started"));
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let http = config.global.http_listen;
    run(
        Source::File(path.to_path_buf(), loader, text),
        config,
        socket,
        http,
        Start { takeover, fd_store },
        || {},
    )
}

/// How [`run`] starts: `takeover` asks the running daemon for its
/// listening sockets (handover.rs); `fd_store` keeps them in systemd's
/// file-descriptor store (fdstore.rs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Start {
    pub takeover: bool,
    pub fd_store: bool,
}

/// The next VRRP event, or never when VRRP is not running.
async fn next_quorum(
    events: &mut Option<mpsc::Receiver<halb_quorum::Event>>,
) -> Option<halb_quorum::Event> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Starts the quorum provider's thread when the config asks for one.
fn start_quorum(
    config: &halb_config::Config,
) -> anyhow::Result<Option<mpsc::Receiver<halb_quorum::Event>>> {
    let Some(q) = &config.global.quorum else {
        return Ok(None);
    };
    let (tx, rx) = mpsc::channel(64);
    match q.provider {
        halb_quorum::Provider::Corosync => {
            halb_quorum::corosync::spawn(move |ev| tx.blocking_send(ev).is_ok())
                .context("starting the corosync quorum thread")?;
        }
    }
    tracing::info!(
        "quorum from {} (settle {:?}, no_quorum_policy = {}): nothing is held until the partition is quorate",
        q.provider.name(),
        q.settle,
        q.no_quorum_policy.name()
    );
    Ok(Some(rx))
}

async fn next_event(
    events: &mut Option<mpsc::UnboundedReceiver<halb_vrrp_net::Event>>,
) -> Option<halb_vrrp_net::Event> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Run the daemon until SIGINT or SIGTERM (or a hand-over to a
/// successor). `ready` is called once the table is applied and the
/// control socket listens. With `takeover`, the daemon running on the
/// control socket hands its listening sockets over first (seamless
/// restart, see `handover`).
pub fn run(
    source: Source,
    mut config: Config,
    socket: Option<PathBuf>,
    http: Option<SocketAddr>,
    start: Start,
    ready: impl FnOnce(),
) -> anyhow::Result<ExitCode> {
    let Start { takeover, fd_store } = start;
    if let Some(s) = socket {
        config.global.control_socket = s;
    }
    // systemd's file-descriptor store: the sockets of this unit's previous
    // run, taken (and the LISTEN_* variables removed) while this process
    // has one thread.
    let mut fd_store = crate::fdstore::FdStore::from_env(fd_store);
    let passed = fd_store.take_passed();
    if fd_store.enabled() {
        tracing::info!("the listening sockets are kept in systemd's file-descriptor store");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    rt.block_on(async move {
        // Signals first: from here on none of those a keepalived or
        // HAProxy user sends ends the daemon without releasing its VIPs
        // and its control socket.
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut usr1 = signal(SignalKind::user_defined1())?;
        let mut usr2 = signal(SignalKind::user_defined2())?;
        let mut alrm = signal(SignalKind::alarm())?;
        let socket_path = config.global.control_socket.clone();
        // The control socket before anything else is bound: a second
        // instance is refused here, while a live daemon answers on it,
        // before it could take (and, on exit, reset) connections queued
        // on the first one's listeners.
        // With --takeover: the running daemon's sockets, and the
        // connection its `ready` goes back on. Its control socket and
        // listen locks are claimed once it has let go of them.
        let handover = if takeover {
            control::check_socket_dir(&socket_path, false)?;
            Some(crate::handover::request(&socket_path)?)
        } else {
            None
        };
        let mut claim = match handover {
            None => Some(control::claim(&socket_path)?),
            Some(_) => None,
        };
        // And one daemon per listen address, whatever its socket.
        // (A lock file halb cannot use, say a directory another user
        // made, only loses that check: it must not stop the daemon.)
        let lock_dir = crate::listenlock::default_dir();
        let mut locks = match crate::listenlock::ListenLocks::open(&lock_dir) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(
                    "not checking that no other halb daemon serves these addresses: {e:#}"
                );
                None
            }
        };
        if handover.is_none() {
            if let Some(l) = &mut locks {
                l.claim(config.services.iter().map(|s| s.key()))?;
            }
        }
        let mut proxy = ProxyDataPlane::new(ProxyOptions {
            workers: config.global.workers,
            ..ProxyOptions::default()
        })
        .context("starting the userspace data plane")?;
        let mut inherited = passed;
        let handover = handover.map(|(stream, listeners)| {
            let n: usize = listeners.values().map(Vec::len).sum();
            tracing::info!(sockets = n, "--takeover: received the running daemon's listening sockets");
            for (k, fds) in listeners {
                inherited.entry(k).or_default().extend(fds);
            }
            stream
        });
        if !inherited.is_empty() {
            proxy.inherit(inherited);
        }
        let mut plane = planes::Planes::new(proxy, &config.global);
        // After the data plane raised RLIMIT_NOFILE.
        let check_cap = check_concurrency(config.global.check_concurrency);
        // One descriptor budget: the proxy leaves the health checks, the
        // dashboard and the rest (control socket, VRRP, hooks, logs)
        // their share.
        let budget = plane.set_descriptor_reserve(check_cap + http::MAX_CONNECTIONS + OTHER_RESERVE);
        tracing::debug!(connections = budget, "descriptor budget of the userspace proxy");
        let nchecks = config.checks.len();
        let nalerts = config.alerts.len();
        let mut director = Director::new(config, check_cap, Instant::now());
        // Operators' overrides of the previous run (`halb drain` …).
        let state_path = {
            let mut name = socket_path.as_os_str().to_owned();
            name.push(".state");
            PathBuf::from(name)
        };
        if let Some(saved) = read_state(&state_path) {
            director.restore_overrides(&saved.overrides);
            let n = director.overrides().iter().count();
            if n > 0 {
                tracing::info!("{n} operator override(s) restored from {}", state_path.display());
            }
            director.restore_role_override(&saved.roles);
            let roles = director.role_override();
            if roles.standby() {
                tracing::info!("halb standby restored from {}: no VIP is taken until `halb online`", state_path.display());
            }
            if !roles.takeover().is_empty() {
                let names: Vec<&str> = roles.takeover().iter().map(String::as_str).collect();
                tracing::info!("halb takeover of {} restored from {}", names.join(", "), state_path.display());
            }
        }
        let table = director.table();
        let report = plane.apply(&table);
        if !report.is_ok() {
            for e in &report.errors {
                eprintln!("halb: {e}");
            }
            anyhow::bail!("{} virtual service(s) could not start", report.errors.len());
        }
        fd_store.sync(plane.listener_fds());
        // IPVS problems (a kernel without IPVS, a refused service) stop
        // only the services concerned: the rest runs.
        for w in &report.warnings {
            tracing::error!("{w}");
        }
        if let Some(stream) = handover {
            // We accept on the sockets: the predecessor stops accepting,
            // lets go of its control socket and listen locks, and drains.
            {
                use std::io::Write as _;
                let mut w = &stream;
                w.write_all(crate::handover::READY)
                    .context("--takeover: telling the running daemon we are ready")?;
            }
            let until = Instant::now() + crate::handover::STEP;
            let c = loop {
                match control::claim(&socket_path) {
                    Ok(c) => break c,
                    Err(e) if Instant::now() >= until => {
                        return Err(e.context("--takeover: the predecessor kept its control socket"))
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
            claim = Some(c);
            if let Some(l) = &mut locks {
                let keys: Vec<_> = director.config().services.iter().map(|s| s.key()).collect();
                loop {
                    match l.claim(keys.iter().copied()) {
                        Ok(()) => break,
                        Err(e) if Instant::now() >= until => {
                            return Err(e.context("--takeover: the predecessor kept its listen locks"))
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }
            tracing::info!("--takeover: the predecessor let go; this daemon runs the service");
        }
        let Some(mut claim) = claim else {
            anyhow::bail!("no control socket");
        };
        let http_listener = match http {
            Some(addr) => Some(bind_retrying(addr, takeover, "dashboard").await?),
            None => None,
        };
        // The control socket appears once the table is applied.
        let listener = claim.listen()?;
        let access = control::Access::new(&director.config().global)?;
        access.share(&socket_path)?;
        let nservices = table.services.len();
        let (vrrp, vrrp_events) = match vrrp::Running::start(director.config())
            .context("starting VRRP")?
        {
            Some((r, e)) => (Some(r), Some(e)),
            None => (None, None),
        };
        let (sender, sender_task) =
            halb_alert::Sender::spawn(ALERT_QUEUE, halb_alert::director_name());
        let vrrp_slot = Arc::new(std::sync::Mutex::new(
            vrrp.as_ref().map(|v: &vrrp::Running| v.handle.clone()),
        ));
        let (published, snapshot) = watch::channel(Arc::new(Status::default()));
        let reader = Arc::new(Reader {
            snapshot,
            refresh: tokio::sync::Notify::new(),
            observer: plane.observer(),
            alerts: sender.clone(),
            vrrp: vrrp_slot.clone(),
            started: Instant::now(),
        });
        // [global.sync]: the channel listens once the table is applied.
        let (push_tx, push_rx) = mpsc::channel::<crate::sync::Push>(1);
        let sync = match (&director.config().global.sync, &source) {
            (Some(c), Source::File(path, _, text)) => Some(
                crate::sync::Running::start(c, text, Some(path.clone()), max_file(&source), takeover, push_tx.clone())
                    .await?,
            ),
            (Some(_), Source::Embedded(name)) => {
                tracing::warn!("config sync: the embedded {name} config has no file to compare");
                None
            }
            (None, _) => None,
        };
        let mut push_rx = sync.as_ref().map(|_| push_rx);
        let quorum_events = start_quorum(director.config())?;
        let mut shell = Shell {
            sync,
            source,
            director,
            plane,
            sender,
            vrrp,
            vrrp_events,
            quorum_events,
            probes: JoinSet::new(),
            prober: Arc::new(NetProber),
            hooks: JoinSet::new(),
            state_path: state_path.clone(),
            agents: JoinSet::new(),
            agent_runner: halb_resource::agent::Agents::default(),
            verify_due: false,
            reload_report: None,
            vrrp_reloaded: None,
            published,
            vrrp_slot,
            reloads: control::ReloadStats::default(),
            locks,
            notify: crate::systemd::Notifier::from_env(),
            fd_store,
        };
        shell.director.handle_start(Instant::now());
        shell.drain();
        shell.publish();
        tracing::info!(
            "halb {} running: {nservices} virtual service(s), {nchecks} health check(s) \
             (at most {check_cap} probes at once), alerts for {nalerts} service(s), control socket {}",
            env!("CARGO_PKG_VERSION"),
            socket_path.display()
        );

        let (control_tx, mut control_rx) = mpsc::channel::<Msg>(CONTROL_QUEUE);
        let asker = Asker {
            tx: control_tx,
            reader: reader.clone(),
            access: Arc::new(access),
        };
        let http_token = shell.director.config().global.http_token.clone();
        let http_task =
            http_listener.map(|l| tokio::spawn(http::serve(l, asker.clone(), http_token)));
        let control_task = tokio::spawn(control::serve(listener, asker.clone()));
        drop(asker);
        ready();
        shell.notify.ready(&format!(
            "running: {nservices} virtual service(s), {nchecks} health check(s)"
        ));
        // systemd's watchdog: looked at every quarter of WatchdogSec, fed
        // while this task runs and the VRRP thread answers (systemd.rs).
        let mut watchdog = crate::systemd::Watchdog::default();
        let mut watchdog_tick = shell.notify.watchdog_period().map(|p| {
            let mut i = tokio::time::interval(p);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });

        loop {
            shell.sync_drain();
            shell.drain();
            let wake = shell.director.poll_timeout();
            let sync_wake = shell.sync.as_ref().and_then(|s| s.tracker.poll_timeout());
            let sync_timer = async {
                match sync_wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let timer = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
                _ = int.recv() => { tracing::info!("interrupted: stopping"); break; }
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    let r = shell.reload();
                    shell.count_reload(&r);
                    shell.publish();
                    shell.after_reply();
                }
                _ = usr1.recv() => shell.dump(&socket_path, false, &reader),
                _ = usr2.recv() => shell.dump(&socket_path, true, &reader),
                _ = alrm.recv() => tracing::debug!("SIGALRM: ignored"),
                () = reader.refresh.notified() => shell.publish(),
                Some(msg) = control_rx.recv() => match msg {
                    Msg::Ask(req, reply) => {
                        let _ = reply.send(shell.handle(req));
                    }
                    Msg::Answered => shell.after_reply(),
                    Msg::Listeners(reply) => {
                        let _ = reply.send(shell.plane.listener_fds());
                    }
                    Msg::HandedOver => { tracing::info!("handed over to the successor: stopping"); break; }
                },
                Some(done) = shell.probes.join_next(), if !shell.probes.is_empty() => {
                    // Results ready together are fed together, before the
                    // director is polled again (one table for all).
                    let now = Instant::now();
                    if let Ok((probe, outcome)) = done {
                        shell.director.handle_probe_result(probe, outcome, now);
                    }
                    while let Some(done) = shell.probes.try_join_next() {
                        if let Ok((probe, outcome)) = done {
                            shell.director.handle_probe_result(probe, outcome, now);
                        }
                    }
                }
                Some(ev) = next_event(&mut shell.vrrp_events) => {
                    vrrp::feed(&mut shell.director, ev, Instant::now());
                }
                Some(ev) = next_quorum(&mut shell.quorum_events) => {
                    shell.director.handle_quorum(ev, Instant::now());
                }
                Some(_) = shell.hooks.join_next(), if !shell.hooks.is_empty() => {}
                Some(done) = shell.agents.join_next(), if !shell.agents.is_empty() => {
                    if let Ok((id, result)) = done {
                        shell.director.handle_agent_result(id, result, Instant::now());
                    }
                }
                () = timer => shell.director.handle_timeout(Instant::now()),
                () = sync_timer => {
                    if let Some(s) = &mut shell.sync {
                        s.tracker.handle_timeout(Instant::now());
                    }
                }
                Some((peer, answer)) = crate::sync::next_answer(&mut shell.sync) => {
                    shell.sync_answer(peer, answer);
                    shell.publish();
                }
                Some(push) = crate::sync::next_push(&mut push_rx) => {
                    let reply = shell.push(&push.from, push.text);
                    let _ = push.reply.send(reply);
                    shell.publish();
                    shell.after_reply();
                }
                _ = tick(&mut watchdog_tick) => {
                    watchdog.tick(&shell.notify, shell.vrrp.as_ref().map(|v| &*v.handle));
                }
            }
        }
        shell.notify.stopping();
        let _stop_feed = shell.notify.feed_while_stopping();
        // New clients are refused from now on (or go to the peer once VRRP
        // released); established connections drain below.
        shell.plane.close_listeners();
        control_task.abort();
        if let Some(t) = http_task {
            t.abort();
        }
        // The control socket (ours only: a successor may have bound its
        // own there) and the listen claims are let go of at once, now that
        // our listeners are closed: a successor (`--takeover`, or a
        // restart) may start while this daemon drains.
        drop(claim);
        shell.locks.take();
        shell.probes.abort_all();
        // Resource groups stop here first (reverse order), then VRRP
        // releases: the peer never starts a group this director still
        // runs (heartbeat's order).
        stop_resources(&mut shell, &mut term, &mut int).await;
        // VRRP releases first (priority-0 advert, VIPs removed) so the
        // backup takes over while our listeners close; its last state
        // changes still run their hooks.
        if let Ok(mut slot) = shell.vrrp_slot.lock() {
            slot.take();
        }
        if let Some(v) = shell.vrrp.take() {
            let mut events = shell.vrrp_events.take();
            let stop = v.stop();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    () = &mut stop => break,
                    Some(ev) = next_event(&mut events) => {
                        vrrp::feed(&mut shell.director, ev, Instant::now());
                        shell.drain();
                    }
                }
            }
            if let Some(rx) = events.as_mut() {
                while let Ok(ev) = rx.try_recv() {
                    vrrp::feed(&mut shell.director, ev, Instant::now());
                }
            }
        }
        // The `stopping` alerts go out before the exit, bounded, and after
        // VRRP released: a slow mail server must not delay the failover.
        shell.director.handle_stop(Instant::now());
        while let Some(action) = shell.director.poll_action() {
            match action {
                Action::Alert(_) | Action::RunHook { .. } => shell.execute(action),
                _ => {}
            }
        }
        // The drain: established connections get `drain_timeout` to end
        // (the alerts go out meanwhile); what is left is reset.
        let drain = shell.director.config().global.drain_timeout;
        drain_connections(&shell.plane, drain, &mut term, &mut int).await;
        shell.plane.reset_connections();
        // The resets are made by the connections' own tasks: let them run
        // before the data plane is dropped (a dropped one would end with a
        // FIN).
        let cut_by = tokio::time::Instant::now() + RESET_WAIT;
        while shell.plane.open_connections() > 0 && tokio::time::Instant::now() < cut_by {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut sender_task = sender_task;
        let sender = shell.sender.clone();
        let drained = tokio::time::timeout(ALERT_DRAIN, async {
            sender.close().await;
            (&mut sender_task).await
        });
        if drained.await.is_err() {
            tracing::warn!(
                "alerts: not all sent within {}s of stopping; giving up",
                ALERT_DRAIN.as_secs()
            );
            sender_task.abort();
        }
        // Hooks keep running after the exit, as keepalived's do.
        shell.hooks.detach_all();
        // Dropping the data plane closes its listeners and stops its workers.
        drop(shell);
        Ok(ExitCode::SUCCESS)
    })
}

/// The watchdog's next period, or never without a watchdog.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The dashboard's listener. After a hand-over the predecessor closes its
/// own a moment later: retried for [`crate::handover::STEP`] then.
pub(crate) async fn bind_retrying(
    addr: SocketAddr,
    takeover: bool,
    what: &str,
) -> anyhow::Result<tokio::net::TcpListener> {
    let until = Instant::now() + crate::handover::STEP;
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e)
                if takeover
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && Instant::now() < until =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("{what} cannot listen on {addr}")))
            }
        }
    }
}

/// `halb resource show`: a member's last operations, newest last.
fn render_history(group: &str, member: &str, ops: &[halb_resource::OpRecord]) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{group}/{member}: last {} operation(s), oldest first\n",
        ops.len()
    );
    for o in ops {
        let _ = write!(
            out,
            "{:<8} {} ({}) {:.1}s ago, took {:.3}s",
            o.op.as_str(),
            o.exit_code
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
            o.exit_code_name,
            o.ago_ms as f64 / 1000.0,
            o.duration_ms as f64 / 1000.0
        );
        if o.repeated > 1 {
            let _ = write!(out, " (x{})", o.repeated);
        }
        if let Some(r) = &o.exit_reason {
            let _ = write!(out, ": {r}");
        }
        out.push('\n');
        for (name, text) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let _ = writeln!(out, "    {name}: {line}");
            }
        }
    }
    out
}

/// A resource event in the log, at the level it deserves.
fn log_resource_event(e: &halb_resource::ResourceEvent) {
    use halb_resource::EventKind as K;
    match &e.kind {
        K::Blocked { .. } => tracing::error!("resource: {e}"),
        K::Failed { .. } | K::Banned { .. } | K::RunningWhereItShouldNot => {
            tracing::warn!("resource: {e}")
        }
        _ => tracing::info!("resource: {e}"),
    }
}

/// Stop every resource group here (in reverse order) before VRRP
/// releases, running the agents' stops; bounded by the longest group's
/// stop timeouts (plus grace), and cut short by a second SIGTERM/SIGINT.
async fn stop_resources(
    shell: &mut Shell,
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) {
    shell.director.handle_stop_resources(Instant::now());
    let limit = shell
        .director
        .config()
        .resource_groups
        .iter()
        .map(|g| {
            g.members
                .iter()
                .map(|m| m.stop_timeout + halb_resource::OP_GRACE)
                .sum::<Duration>()
        })
        .max()
        .unwrap_or(Duration::ZERO)
        + Duration::from_secs(1);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        shell.drain();
        if !shell.director.resources_running() {
            return;
        }
        let wake = shell.director.poll_timeout();
        let timer = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term.recv() => { tracing::warn!("SIGTERM again: not waiting for the resource groups to stop"); return; }
            _ = int.recv() => { tracing::warn!("interrupted again: not waiting for the resource groups to stop"); return; }
            () = tokio::time::sleep_until(deadline) => {
                tracing::error!("resource groups not stopped within {limit:?}: VRRP releases anyway");
                return;
            }
            Some(done) = shell.agents.join_next(), if !shell.agents.is_empty() => {
                if let Ok((id, result)) = done {
                    shell.director.handle_agent_result(id, result, Instant::now());
                }
            }
            () = timer => shell.director.handle_timeout(Instant::now()),
        }
    }
}

/// Wait until the data planes carry no connection, `limit` passed, or a
/// second SIGTERM or SIGINT (stop now, as HAProxy's hard stop).
async fn drain_connections(
    plane: &planes::Planes,
    limit: Duration,
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) {
    let open = plane.open_connections();
    if open == 0 || limit.is_zero() {
        if open > 0 {
            tracing::info!(open, "drain_timeout is 0: resetting the open connections");
        }
        return;
    }
    tracing::info!(
        open,
        "draining: established connections have {limit:?} to end"
    );
    let deadline = tokio::time::Instant::now() + limit;
    let mut tick = tokio::time::interval(DRAIN_POLL);
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::warn!("SIGTERM again: resetting the open connections now"); return; }
            _ = int.recv() => { tracing::warn!("interrupted again: resetting the open connections now"); return; }
            () = tokio::time::sleep_until(deadline) => {
                let open = plane.open_connections();
                if open > 0 {
                    tracing::warn!(open, "drain_timeout ({limit:?}) reached: resetting the connections still open");
                }
                return;
            }
            _ = tick.tick() => {
                if plane.open_connections() == 0 {
                    tracing::info!("drained: no connection left");
                    return;
                }
            }
        }
    }
}

/// How long the connections' tasks get to reset themselves at the end of
/// a drain.
const RESET_WAIT: Duration = Duration::from_secs(1);

/// How often a drain looks whether connections are left.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// Descriptors kept for the control socket, VRRP, notify hooks, alerts
/// and logs, beyond the health checks' and the dashboard's shares.
const OTHER_RESERVE: usize = 128;

/// Bytes of a notify hook's stdout and stderr kept for the log.
const HOOK_OUTPUT: usize = 4096;

/// Control requests waiting for the daemon's task at most (the clients
/// beyond wait in the socket's backlog).
const CONTROL_QUEUE: usize = 64;

/// How long shutdown waits for the alert sender to deliver what is queued
/// (the `stopping` alerts among them).
const ALERT_DRAIN: Duration = Duration::from_secs(5);

/// Alerts waiting in the sender's queue at most (beyond them: dropped and
/// counted).
const ALERT_QUEUE: usize = 1024;

/// What `halb reload` answers: the changes, the first ten of them when
/// there are more (each one is in the log).
fn reload_summary(changes: &[String]) -> String {
    const SHOWN: usize = 10;
    match changes.len() {
        0 => "reloaded: no changes".to_string(),
        n if n <= SHOWN => format!("reloaded: {}", changes.join("; ")),
        n => format!(
            "reloaded: {}; and {} more changes (each one is in the log)",
            changes[..SHOWN].join("; "),
            n - SHOWN
        ),
    }
}

/// Default cap on probes in flight. Also overload control: with 10,000
/// checks a second on a CPU-starved host, an uncapped engine started
/// probes faster than the runtime finished them, every result came after
/// its timeout and every check went down; capped, probes wait in the
/// engine's queue instead, checks slow down and stay correct
/// (bench/health-bench).
const DEFAULT_CHECK_CONCURRENCY: usize = 1024;

/// The cap on probes in flight: `configured`, or 0 for 1024 but at most
/// half the soft `RLIMIT_NOFILE` (read after the data plane raised it to
/// the hard limit), leaving the other half to the data plane.
fn check_concurrency(configured: usize) -> usize {
    use nix::sys::resource::{getrlimit, Resource};
    if configured > 0 {
        return configured;
    }
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
    usize::try_from(soft / 2)
        .unwrap_or(usize::MAX)
        .clamp(16, DEFAULT_CHECK_CONCURRENCY)
}

#[cfg(test)]
mod tests {
    use super::reload_summary;

    #[test]
    fn reload_summary_is_bounded() {
        assert_eq!(reload_summary(&[]), "reloaded: no changes");
        let few: Vec<String> = (0..3).map(|i| format!("c{i}")).collect();
        assert_eq!(reload_summary(&few), "reloaded: c0; c1; c2");
        let many: Vec<String> = (0..1000).map(|i| format!("c{i}")).collect();
        let s = reload_summary(&many);
        assert!(s.starts_with("reloaded: c0; c1;"), "{s}");
        assert!(
            s.ends_with("c9; and 990 more changes (each one is in the log)"),
            "{s}"
        );
    }
}
