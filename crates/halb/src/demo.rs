//! `halb demo`: everything on loopback, no files, no root.
//!
//! Three HTTP back ends answer every request with their own name, and a
//! weighted round-robin virtual service on 127.0.0.1:8080 spreads
//! connections over them with weights 1, 2 and 3, so the spread is visible
//! with a few `curl`s.

use crate::daemon::{self, Source};
use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The embedded default config.
pub const DEMO_CONFIG: &str = r#"# halb demo: a weighted round-robin virtual service over three back ends.
[[virtual_service]]
name = "demo"
listen = "127.0.0.1:8080"
protocol = "tcp"
scheduler = "wrr"

  [[virtual_service.real_server]]
  address = "127.0.0.1:18081"
  weight = 1

  [[virtual_service.real_server]]
  address = "127.0.0.1:18082"
  weight = 2

  [[virtual_service.real_server]]
  address = "127.0.0.1:18083"
  weight = 3
"#;

/// Where the demo's dashboard listens.
pub const DASHBOARD: &str = "127.0.0.1:9090";

/// The demo back ends: (name, address).
pub const BACKENDS: [(&str, &str); 3] = [
    ("backend-1", "127.0.0.1:18081"),
    ("backend-2", "127.0.0.1:18082"),
    ("backend-3", "127.0.0.1:18083"),
];

pub fn run(socket: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = halb_config::parse(DEMO_CONFIG, Path::new("<embedded demo config>"))
        .map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    let backends = start_backends()?;
    let socket_path = socket
        .clone()
        .unwrap_or_else(|| config.global.control_socket.clone());
    let http: SocketAddr = DASHBOARD.parse()?;
    let result = daemon::run(
        Source::Embedded("demo"),
        config,
        socket,
        Some(http),
        daemon::Start::default(),
        || {
            print_banner(&socket_path);
        },
    );
    drop(backends);
    result
}

fn print_banner(socket: &Path) {
    let list = if *socket == halb_config::default_control_socket() {
        "halb list".to_string()
    } else {
        format!("halb list --socket {}", socket.display())
    };
    println!(
        "\nhalb demo is running.\n\
         \n  virtual service  127.0.0.1:8080 (tcp, wrr)\n\
         \x20   -> backend-1   127.0.0.1:18081  weight 1\n\
         \x20   -> backend-2   127.0.0.1:18082  weight 2\n\
         \x20   -> backend-3   127.0.0.1:18083  weight 3\n\
         \n  dashboard        http://{DASHBOARD}/  (JSON: /api/v1/status)\n\
         \nTry, in another terminal:\n\
         \x20 for i in $(seq 6); do curl -s http://127.0.0.1:8080/; done\n\
         \x20 {list}\n\
         \x20 {list} --stats\n\
         \x20 {list} --connections\n\
         \nCtrl-C stops everything.\n"
    );
}

/// The back ends run on their own runtime thread; dropping the guard stops
/// them.
struct Backends {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Backends {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start_backends() -> anyhow::Result<Backends> {
    let mut listeners = Vec::new();
    for (name, addr) in BACKENDS {
        let addr: SocketAddr = addr.parse()?;
        let l = std::net::TcpListener::bind(addr).with_context(|| {
            format!("demo back end {name} cannot listen on {addr} (is another demo running?)")
        })?;
        l.set_nonblocking(true)?;
        listeners.push((name, l));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("demo-backends".into())
        .spawn(move || {
            rt.block_on(async move {
                for (name, l) in listeners {
                    match tokio::net::TcpListener::from_std(l) {
                        Ok(l) => {
                            tokio::spawn(serve_backend(name, l));
                        }
                        Err(e) => tracing::error!("demo back end {name}: {e}"),
                    }
                }
                let _ = rx.await;
            });
        })?;
    Ok(Backends {
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

async fn serve_backend(name: &'static str, listener: tokio::net::TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("demo back end {name}: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let svc = service_fn(move |_req: Request<hyper::body::Incoming>| async move {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!("{name}\n")))))
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
