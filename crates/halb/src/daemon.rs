//! The daemon: config in, table to the data plane, control socket, signals.

use crate::cli::EXIT_CONFIG;
use crate::control::{self, Request, Response, Status};
use crate::health::Checks;
use crate::{diff, health, http, planes};
use anyhow::Context;
use halb_config::Config;
use halb_health::{CheckId, CheckSpec, Engine, Event, Health, NetProber};
use halb_proxy::{ProxyDataPlane, ProxyOptions};
use halb_table::DataPlane;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

/// Where the running config came from, so a reload can read it again.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
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
}

impl Daemon {
    fn status(&self) -> Status {
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            dataplane: self.plane.name().to_string(),
            config: match &self.source {
                Source::File(p) => Some(p.clone()),
                Source::Embedded(_) => None,
            },
            uptime_secs: self.started.elapsed().as_secs(),
            services: self.plane.stats(),
            health: self.checks.report(&self.config),
            health_transitions: self.checks.transitions(),
        }
    }

    /// Engine events: log each transition, and re-apply the effective
    /// table when health changed (a diff: established connections stay).
    fn on_health(&mut self, events: Vec<Event>) {
        let mut reapply = false;
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
    }

    /// Re-read the config and apply it as a diff. A config that does not
    /// validate changes nothing.
    fn reload(&mut self) -> Response {
        let new = match &self.source {
            Source::File(path) => match halb_config::load(path) {
                Ok(c) => c,
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
        {
            tracing::warn!("control_socket and workers changes take effect at the next restart");
        }
        let old_table = self.config.to_table();
        let new_table = new.to_table();
        let mut changes = diff::describe(&old_table, &new_table);
        if let Some(c) = health::describe_changes(&self.config, &new) {
            changes.push(c);
        }
        if new.global.ipvs != self.config.global.ipvs {
            changes.push("[global.ipvs] changed".into());
        }
        let set = self.checks.set(&new);
        self.check_set.send_replace(set);
        self.plane.set_global(&new.global);
        let report = self.plane.apply(&self.checks.effective(&new));
        self.config = new;
        for c in &changes {
            tracing::info!("reload: {c}");
        }
        for w in &report.warnings {
            tracing::error!("reload: {w}");
        }
        if report.is_ok() && report.warnings.is_empty() {
            let summary = if changes.is_empty() {
                "reloaded: no changes".to_string()
            } else {
                format!("reloaded: {}", changes.join("; "))
            };
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

/// `halb run --config FILE`.
pub fn run_file(path: &Path, socket: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = match halb_config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            eprint!("{}", errors.render_with_outcome("nothing was started"));
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let http = config.global.http_listen;
    run(
        Source::File(path.to_path_buf()),
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
        let (set_tx, set_rx) = watch::channel(check_set);
        let daemon = Arc::new(Mutex::new(Daemon {
            source,
            config,
            plane,
            started: Instant::now(),
            checks,
            check_set: set_tx,
        }));
        let health_task = spawn_health(daemon.clone(), set_rx);
        tracing::info!(
            "halb {} running: {nservices} virtual service(s), {nchecks} health check(s), control socket {}",
            env!("CARGO_PKG_VERSION"),
            socket_path.display()
        );
        ready();

        let http_task = http_listener.map(|l| {
            let d = daemon.clone();
            let handler: http::Handler = Arc::new(move |req| match d.lock() {
                Ok(mut d) => d.handle(req),
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
                        tokio::spawn(control::serve_one(stream, move |req| match d.lock() {
                            Ok(mut d) => d.handle(req),
                            Err(_) => Response::Error {
                                message: "daemon state is poisoned".into(),
                            },
                        }));
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
                    }
                }
                _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
                _ = int.recv() => { tracing::info!("interrupted: stopping"); break; }
            }
        }
        control_task.abort();
        for t in health_task {
            t.abort();
        }
        if let Some(t) = http_task {
            t.abort();
        }
        let _ = std::fs::remove_file(&socket_path);
        // Dropping the data plane closes its listeners and stops its workers.
        drop(daemon);
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs the check engine on this runtime: forwards each new check set to
/// it, and feeds its events to the daemon (batched: one re-apply for the
/// transitions that arrive together).
fn spawn_health(
    daemon: Arc<Mutex<Daemon>>,
    mut sets: watch::Receiver<Vec<(CheckId, CheckSpec)>>,
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
    let engine = tokio::spawn(async move {
        halb_health::drive(Engine::new(), Arc::new(NetProber), updates_rx, events_tx).await;
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
