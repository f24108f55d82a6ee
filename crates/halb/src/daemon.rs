//! The daemon: config in, table to the data plane, control socket, signals.

use crate::cli::EXIT_CONFIG;
use crate::control::{self, Request, Response, Status};
use crate::health::Checks;
use crate::{diff, health, http, planes, vrrp};
use anyhow::Context;
use halb_alert::{DaemonStatus, Policy, State, Transition};
use halb_config::Config;
use halb_health::{CheckId, CheckSpec, Engine, Event, Health, NetProber};
use halb_proxy::{ProxyDataPlane, ProxyOptions};
use halb_table::DataPlane;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

/// Where the running config came from, so a reload can read it again.
#[derive(Debug)]
pub enum Source {
    /// A file, and what its last load can give the next one.
    File(PathBuf, Box<halb_config::Loader>),
    /// An embedded config (`halb demo`): reload has nothing to re-read.
    Embedded(&'static str),
}

struct Daemon {
    source: Source,
    config: Config,
    plane: planes::Planes,
    started: Instant,
    /// Health state of the configured checks.
    checks: Checks,
    /// The check set for the engine (latest wins).
    check_set: watch::Sender<Vec<(CheckId, CheckSpec)>>,
    /// Health-check alerts: the sans-IO policy and the sender shell.
    alerts: Policy,
    sender: halb_alert::Sender,
    /// Wakes the alert timer when the policy's deadline may have moved.
    alert_timer: Arc<tokio::sync::Notify>,
    /// VRRP, when the config has instances.
    vrrp: Option<vrrp::Running>,
    /// Every VRRP instance's latest state.
    roles: vrrp::Roles,
    /// A reload was applied: the data planes check what changed behind
    /// halb's back once it is answered ([`Daemon::after_reply`]).
    verify_due: bool,
}

/// How long `starting` and `reloading` last for `email_alert_status`: the
/// first probe round of the slowest check (warmup + interval + timeout).
fn first_round(config: &Config) -> Duration {
    config
        .checks
        .iter()
        .map(|c| c.spec.timing.warmup + c.spec.timing.interval + c.spec.timing.timeout)
        .max()
        .unwrap_or(Duration::ZERO)
}

impl Daemon {
    fn status(&self) -> Status {
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            dataplane: self.plane.name().to_string(),
            config: match &self.source {
                Source::File(p, _) => Some(p.clone()),
                Source::Embedded(_) => None,
            },
            uptime_secs: self.started.elapsed().as_secs(),
            services: self.plane.stats(),
            health: self.checks.report(&self.config),
            health_transitions: self.checks.transitions(),
            alerts: self.sender.stats(),
            vrrp: self
                .vrrp
                .as_ref()
                .map(|v| vrrp::status(&v.handle))
                .unwrap_or_default(),
        }
    }

    /// Engine events: log each transition, and re-apply the effective
    /// table when health changed (a diff: established connections stay).
    fn on_health(&mut self, events: Vec<Event>) {
        let mut reapply = false;
        let now = Instant::now();
        for ev in events {
            let (changes, changed) = self.checks.on_event(ev);
            reapply |= changed;
            for c in changes {
                let name = self
                    .config
                    .services
                    .iter()
                    .find(|s| s.key() == c.service)
                    .map_or_else(|| c.service.to_string(), |s| s.name.clone());
                let state = |h: Health| match h {
                    Health::Up => State::Up,
                    Health::Down => State::Down,
                };
                let t = Transition {
                    service: name.clone(),
                    real: c.real,
                    from: state(c.from),
                    to: state(c.to),
                    reason: c.reason.clone(),
                };
                self.alerts.handle_transition(t, now);
                while let Some(action) = self.alerts.poll_action() {
                    self.sender.submit(action);
                }
                self.alert_timer.notify_one();
                match c.to {
                    Health::Up => tracing::info!(
                        "health: {name}: real server {} is up ({}; was {})",
                        c.real,
                        c.reason,
                        c.from
                    ),
                    Health::Down => tracing::warn!(
                        "health: {name}: real server {} is down ({}; was {})",
                        c.real,
                        c.reason,
                        c.from
                    ),
                }
            }
        }
        if reapply {
            let report = self.plane.apply(&self.checks.effective(&self.config));
            for e in report.errors.iter().chain(&report.warnings) {
                tracing::error!("applying health changes: {e}");
            }
        }
        self.track_services();
    }

    /// `[global.ipvs.sync_daemon] vrrp_instance`: the sync daemon is
    /// master while that instance is master, backup otherwise (as
    /// keepalived's `lvs_sync_daemon`), so the director that takes over
    /// already knows the connections.
    fn follow_sync(&mut self, roles: &std::collections::HashMap<String, halb_vrrp::State>) {
        let Some(name) = self
            .config
            .global
            .ipvs
            .sync_daemon
            .as_ref()
            .and_then(|d| d.follow.clone())
        else {
            return;
        };
        let role = match roles.get(&name) {
            Some(halb_vrrp::State::Master) => halb_ipvs::SyncState::Master,
            _ => halb_ipvs::SyncState::Backup,
        };
        if self.plane.set_sync_role(role) {
            tracing::info!(
                "ipvs: VRRP instance {name} is {:?}: sync daemon becomes {role:?}",
                roles.get(&name)
            );
            let report = self.plane.apply(&self.checks.effective(&self.config));
            for e in report.errors.iter().chain(&report.warnings) {
                tracing::error!("switching the sync daemon: {e}");
            }
        }
    }

    /// VRRP `track_service`: priorities follow the services' health.
    fn track_services(&self) {
        if let Some(v) = &self.vrrp {
            vrrp::apply_track_service(&self.config, &self.checks.report(&self.config), &v.deltas);
        }
    }

    /// Re-read the config and apply it as a diff. A config that does not
    /// validate changes nothing.
    fn reload(&mut self) -> Response {
        let new = match &mut self.source {
            Source::File(path, loader) => match loader.load(path) {
                Ok(c) => {
                    log_load(loader);
                    c
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
        if new.global.control_socket != self.config.global.control_socket
            || new.global.workers != self.config.global.workers
            || new.global.check_concurrency != self.config.global.check_concurrency
        {
            tracing::warn!(
                "control_socket, workers and check_concurrency changes take effect at the next restart"
            );
        }
        let old_table = self.config.to_table();
        let new_table = new.to_table();
        let mut changes = diff::describe(&old_table, &new_table);
        if let Some(c) = health::describe_changes(&self.config, &new) {
            changes.push(c);
        }
        if self.config.alerts != new.alerts {
            changes.push("alerts: changed".to_owned());
        }
        let set = self.checks.set(&new);
        self.check_set.send_replace(set);
        self.set_alerts(&new, DaemonStatus::Reloading);
        if new.global.ipvs != self.config.global.ipvs {
            changes.push("[global.ipvs] changed".into());
        }
        self.plane.set_global(&new.global);
        let report = self.plane.apply(&self.checks.effective(&new));
        self.verify_due = true;
        let roles = self.roles.borrow().clone();
        // VRRP is touched only when its config changed: a reload would
        // restart the trackers (and their rise/fall counts).
        if new.vrrp_instances != self.config.vrrp_instances
            || new.vrrp_sync_groups != self.config.vrrp_sync_groups
        {
            let vrrp_result = match &mut self.vrrp {
                Some(v) => v.reload(&new),
                None => vrrp::Running::start(&new, &self.roles).map(|r| self.vrrp = r),
            };
            match vrrp_result {
                Err(e) => tracing::error!("VRRP reload: {e:#}"),
                Ok(()) => changes.push(format!(
                    "VRRP: {} instance(s) applied",
                    new.vrrp_instances.len()
                )),
            }
        }
        self.config = new;
        self.follow_sync(&roles);
        self.track_services();
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

    /// Shutdown: the alert status becomes `stopping` and every real server
    /// that is up gets a down alert ("halb is stopping"): it leaves the
    /// table with this daemon (ldirectord mails the removals too).
    fn stopping(&mut self) {
        let now = Instant::now();
        self.alerts.handle_status(DaemonStatus::Stopping, None);
        for r in self.checks.report(&self.config) {
            if r.health != crate::control::HealthState::Up {
                continue;
            }
            let t = Transition {
                service: r.service,
                real: r.real,
                from: State::Up,
                to: State::Down,
                reason: "halb is stopping".to_owned(),
            };
            self.alerts.handle_transition(t, now);
            while let Some(action) = self.alerts.poll_action() {
                self.sender.submit(action);
            }
        }
    }

    /// Gives the alert policy `config`'s settings; `status` lasts for the
    /// first probe round.
    fn set_alerts(&mut self, config: &Config, status: DaemonStatus) {
        let now = Instant::now();
        self.alerts.handle_specs(config.alerts.iter().cloned(), now);
        // Built only when some real server is down (a reload of 100,000
        // real servers should not hash them all for nothing).
        let mut present: Option<std::collections::HashSet<(&str, SocketAddr)>> = None;
        self.alerts.retain(|s, r| {
            present
                .get_or_insert_with(|| {
                    config
                        .services
                        .iter()
                        .flat_map(|s| s.reals.iter().map(move |r| (s.name.as_str(), r.addr)))
                        .collect()
                })
                .contains(&(s, r))
        });
        self.alerts
            .handle_status(status, Some(now + first_round(config)));
        self.alert_timer.notify_one();
    }

    /// Repeats due now; returns the next deadline.
    fn on_alert_timeout(&mut self) -> Option<Instant> {
        self.alerts.handle_timeout(Instant::now());
        while let Some(action) = self.alerts.poll_action() {
            self.sender.submit(action);
        }
        self.alerts.poll_timeout()
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

    fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::Status => Response::Status(self.status()),
            Request::Connections => Response::Connections {
                connections: self.plane.connections(),
            },
            Request::Reload => self.reload(),
        }
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
pub fn run_file(path: &Path, socket: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut loader = Box::<halb_config::Loader>::default();
    let config = match loader.load(path) {
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
        Source::File(path.to_path_buf(), loader),
        config,
        socket,
        http,
        || {},
    )
}

/// Run the daemon until SIGINT or SIGTERM. `ready` is called once the
/// table is applied and the control socket listens.
pub fn run(
    source: Source,
    mut config: Config,
    socket: Option<PathBuf>,
    http: Option<SocketAddr>,
    ready: impl FnOnce(),
) -> anyhow::Result<ExitCode> {
    if let Some(s) = socket {
        config.global.control_socket = s;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    rt.block_on(async move {
        let socket_path = config.global.control_socket.clone();
        let proxy = ProxyDataPlane::new(ProxyOptions {
            workers: config.global.workers,
            ..ProxyOptions::default()
        })
        .context("starting the userspace data plane")?;
        let mut plane = planes::Planes::new(proxy, &config.global);
        let mut checks = Checks::new();
        let results = checks.results();
        let check_set = checks.set(&config);
        let nchecks = check_set.len();
        let table = checks.effective(&config);
        let report = plane.apply(&table);
        if !report.is_ok() {
            for e in &report.errors {
                eprintln!("halb: {e}");
            }
            anyhow::bail!("{} virtual service(s) could not start", report.errors.len());
        }
        // IPVS problems (a kernel without IPVS, a refused service) stop
        // only the services concerned: the rest runs.
        for w in &report.warnings {
            tracing::error!("{w}");
        }
        let listener = control::bind(&socket_path)?;
        let http_listener = match http {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("dashboard cannot listen on {addr}"))?,
            ),
            None => None,
        };
        let nservices = table.services.len();
        let (roles, mut roles_rx) = watch::channel(std::collections::HashMap::new());
        let vrrp = vrrp::Running::start(&config, &roles).context("starting VRRP")?;
        let check_cap = check_concurrency(config.global.check_concurrency);
        let (set_tx, set_rx) = watch::channel(check_set);
        let (sender, sender_task) =
            halb_alert::Sender::spawn(ALERT_QUEUE, halb_alert::director_name());
        let alert_timer = Arc::new(tokio::sync::Notify::new());
        let mut d = Daemon {
            source,
            config,
            plane,
            started: Instant::now(),
            checks,
            check_set: set_tx,
            alerts: Policy::new(),
            sender,
            alert_timer: alert_timer.clone(),
            vrrp,
            roles,
            verify_due: false,
        };
        let initial = d.config.clone();
        d.set_alerts(&initial, DaemonStatus::Starting);
        let nalerts = initial.alerts.len();
        let daemon = Arc::new(Mutex::new(d));
        // track_service from the start: a real server that is down from
        // the start never makes a health transition, so waiting for one
        // would leave the priority untouched while all back ends are dead.
        if let Ok(d) = daemon.lock() {
            d.track_services();
        }
        let health_task = spawn_health(daemon.clone(), set_rx, results, check_cap);
        let follow = daemon.clone();
        let roles_task = tokio::spawn(async move {
            while roles_rx.changed().await.is_ok() {
                let roles = roles_rx.borrow_and_update().clone();
                match follow.lock() {
                    Ok(mut d) => d.follow_sync(&roles),
                    Err(_) => return,
                }
            }
        });
        let timer_task = spawn_alert_timer(daemon.clone(), alert_timer);
        tracing::info!(
            "halb {} running: {nservices} virtual service(s), {nchecks} health check(s) \
             (at most {check_cap} probes at once), alerts for {nalerts} service(s), control socket {}",
            env!("CARGO_PKG_VERSION"),
            socket_path.display()
        );
        ready();

        let http_task = http_listener.map(|l| {
            let d = daemon.clone();
            let handler: http::Handler = Arc::new(move |req| match d.lock() {
                Ok(mut d) => {
                    let r = d.handle(req);
                    d.after_reply();
                    r
                }
                Err(_) => Response::Error {
                    message: "daemon state is poisoned".into(),
                },
            });
            tokio::spawn(http::serve(l, handler))
        });

        let served = daemon.clone();
        let control_task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let d = served.clone();
                        let after = served.clone();
                        tokio::spawn(control::serve_one(
                            stream,
                            move |req| match d.lock() {
                                Ok(mut d) => d.handle(req),
                                Err(_) => Response::Error {
                                    message: "daemon state is poisoned".into(),
                                },
                            },
                            move || {
                                if let Ok(mut d) = after.lock() {
                                    d.after_reply();
                                }
                            },
                        ));
                    }
                    Err(e) => {
                        tracing::warn!("control socket accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });

        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    if let Ok(mut d) = daemon.lock() {
                        d.reload();
                        d.after_reply();
                    }
                }
                _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
                _ = int.recv() => { tracing::info!("interrupted: stopping"); break; }
            }
        }
        control_task.abort();
        roles_task.abort();
        timer_task.abort();
        for t in health_task {
            t.abort();
        }
        if let Some(t) = http_task {
            t.abort();
        }
        let _ = std::fs::remove_file(&socket_path);
        // VRRP releases first (priority-0 advert, VIPs removed) so the
        // backup takes over while our listeners close.
        let running = daemon.lock().ok().and_then(|mut d| d.vrrp.take());
        if let Some(v) = running {
            v.stop().await;
        }
        // The `stopping` alerts go out before the exit, bounded, and after
        // VRRP released: a slow mail server must not delay the failover.
        let sender = match daemon.lock() {
            Ok(mut d) => {
                d.stopping();
                Some(d.sender.clone())
            }
            Err(_) => None,
        };
        if let Some(sender) = sender {
            let mut sender_task = sender_task;
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
        } else {
            sender_task.abort();
        }
        // Dropping the data plane closes its listeners and stops its workers.
        drop(daemon);
        Ok(ExitCode::SUCCESS)
    })
}

/// How long shutdown waits for the alert sender to deliver what is queued
/// (the `stopping` alerts among them).
const ALERT_DRAIN: Duration = Duration::from_secs(5);

/// Alerts waiting in the sender's queue at most (beyond them: dropped and
/// counted).
const ALERT_QUEUE: usize = 1024;

/// Sleeps until the alert policy's next deadline (repeats, end of
/// `starting`/`reloading`), woken early when the daemon changed it.
fn spawn_alert_timer(
    daemon: Arc<Mutex<Daemon>>,
    wake: Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let next = match daemon.lock() {
                Ok(mut d) => d.on_alert_timeout(),
                Err(_) => return,
            };
            match next {
                Some(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t.into()) => {}
                        _ = wake.notified() => {}
                    }
                }
                None => wake.notified().await,
            }
        }
    })
}

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

/// Runs the check engine on this runtime: forwards each new check set to
/// it, and feeds its events to the daemon (batched: one re-apply for the
/// transitions that arrive together).
fn spawn_health(
    daemon: Arc<Mutex<Daemon>>,
    mut sets: watch::Receiver<Vec<(CheckId, CheckSpec)>>,
    results: crate::health::LastResults,
    max_in_flight: usize,
) -> [tokio::task::JoinHandle<()>; 3] {
    let (updates_tx, updates_rx) = mpsc::channel(4);
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let forward = tokio::spawn(async move {
        loop {
            let set = sets.borrow_and_update().clone();
            if updates_tx.send(set).await.is_err() || sets.changed().await.is_err() {
                return;
            }
        }
    });
    let prober = Arc::new(crate::health::Recording {
        inner: NetProber,
        results,
    });
    let engine = tokio::spawn(async move {
        let mut engine = Engine::new();
        engine.set_max_in_flight(Some(max_in_flight));
        halb_health::drive(engine, prober, updates_rx, events_tx).await;
    });
    let events = tokio::spawn(async move {
        while let Some(ev) = events_rx.recv().await {
            let mut batch = vec![ev];
            while let Ok(ev) = events_rx.try_recv() {
                batch.push(ev);
            }
            match daemon.lock() {
                Ok(mut d) => d.on_health(batch),
                Err(_) => return,
            }
        }
    });
    [forward, engine, events]
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
