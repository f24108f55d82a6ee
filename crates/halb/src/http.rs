//! The HTTP endpoint: a live dashboard at `/` and the JSON API under
//! `/api/v1/` (`status`, `connections`, the `events` stream, and with
//! `http_token` the `command` POST: see `api.rs`), and Prometheus
//! metrics at `/metrics` (`crate::metrics`). It serves what the
//! control socket serves. Off unless `[global] http_listen` is set (the
//! demo sets it to 127.0.0.1:9090).
//!
//! Every connection is bounded, so that nobody who can reach the port can
//! hold the descriptors the data plane and the control socket share:
//!
//! * at most [`MAX_CONNECTIONS`] open at once; one beyond it is closed as
//!   soon as it is accepted, counted, and the log says so (at most one line
//!   per [`LOG_EVERY`]);
//! * the request head (start line and headers) must arrive within
//!   [`HEADER_TIMEOUT`] of the connection opening or of the previous
//!   response: hyper's `header_read_timeout`, which closes both slow
//!   senders and keep-alive connections that send no next request;
//! * a connection that moves no byte either way for [`IDLE_TIMEOUT`] is
//!   closed (a client that does not read its response);
//! * none lives longer than [`MAX_LIFETIME`]: it is then asked to finish
//!   (keep-alive off) and closed after at most [`HEADER_TIMEOUT`] more;
//! * the read buffer is [`MAX_BUF`] bytes (a longer head is refused with
//!   431).

use crate::api::{self, Body};
use crate::control::{Asker, Request as ControlRequest, Response as ControlResponse};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

const DASHBOARD: &str = include_str!("dashboard.html");

/// Most dashboard connections open at once. The dashboard polls once a
/// second on one keep-alive connection per browser tab.
pub const MAX_CONNECTIONS: usize = 256;
/// Time allowed for a request head, from the connection's start or from
/// the end of the previous response.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection on which no byte moves either way for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a connection lives (a browser simply opens the next one).
pub const MAX_LIFETIME: Duration = Duration::from_secs(60);
/// hyper's read buffer: the largest request head (its minimum is 8 KiB).
pub const MAX_BUF: usize = 16 * 1024;
/// At most one log line per this long about refused connections or
/// accept errors.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Counts a kind of event and logs it at most once per [`LOG_EVERY`], with
/// how many happened since the last line.
struct RateLog {
    what: &'static str,
    last: Option<Instant>,
    since: u64,
    total: u64,
}

impl RateLog {
    fn new(what: &'static str) -> RateLog {
        RateLog {
            what,
            last: None,
            since: 0,
            total: 0,
        }
    }

    /// One more; `detail` goes into the line if one is written now.
    fn note(&mut self, detail: &dyn std::fmt::Display) {
        self.since += 1;
        self.total += 1;
        let now = Instant::now();
        if self.last.is_some_and(|t| now < t + LOG_EVERY) {
            return;
        }
        tracing::warn!(
            "dashboard: {} {} since the last such line ({} since start): {detail}; logged at most every {}s",
            self.since,
            self.what,
            self.total,
            LOG_EVERY.as_secs()
        );
        self.last = Some(now);
        self.since = 0;
    }
}

pub async fn serve(listener: tokio::net::TcpListener, handler: Asker, token: Option<String>) {
    let token: Option<Arc<str>> = token.map(Arc::from);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut refused = RateLog::new("connections refused");
    let mut accept_errors = RateLog::new("accept errors");
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                let fds = [nix::errno::Errno::EMFILE, nix::errno::Errno::ENFILE]
                    .iter()
                    .any(|n| e.raw_os_error() == Some(*n as i32));
                if fds {
                    accept_errors.note(&format_args!("out of file descriptors ({e})"));
                } else {
                    accept_errors.note(&e);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Closed at once: the cap is what keeps descriptors for the
            // services and the control socket.
            drop(stream);
            refused.note(&format_args!(
                "{MAX_CONNECTIONS} dashboard connections already open"
            ));
            continue;
        };
        let handler = handler.clone();
        let token = token.clone();
        tokio::spawn(async move {
            connection(stream, handler, token, peer).await;
            drop(permit);
        });
    }
}

/// Serves one connection within its bounds (see the module documentation).
async fn connection(
    stream: TcpStream,
    handler: Asker,
    token: Option<Arc<str>>,
    peer: std::net::SocketAddr,
) {
    let start = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Tracked {
        inner: stream,
        start,
        activity: activity.clone(),
    });
    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
        let handler = handler.clone();
        let token = token.clone();
        async move { Ok::<_, Infallible>(route(req, &handler, token.as_deref(), peer).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_BUF);
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let end_of_life = tokio::time::sleep_until(start + MAX_LIFETIME);
    tokio::pin!(end_of_life);
    loop {
        let idle_until =
            start + Duration::from_millis(activity.load(Ordering::Relaxed)) + IDLE_TIMEOUT;
        tokio::select! {
            _ = conn.as_mut() => return,
            () = tokio::time::sleep_until(idle_until) => {
                let last = Duration::from_millis(activity.load(Ordering::Relaxed));
                if Instant::now() >= start + last + IDLE_TIMEOUT {
                    return; // dropped: closed
                }
            }
            () = end_of_life.as_mut() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(HEADER_TIMEOUT, conn.as_mut()).await;
                return;
            }
        }
    }
}

/// The connection's stream, noting when a byte last moved (milliseconds
/// since `start`) for the idle timeout.
struct Tracked {
    inner: TcpStream,
    start: Instant,
    activity: Arc<AtomicU64>,
}

impl Tracked {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn route(
    req: Request<hyper::body::Incoming>,
    handler: &Asker,
    token: Option<&str>,
    peer: std::net::SocketAddr,
) -> Response<Body> {
    if req.method() == Method::POST && req.uri().path() == "/api/v1/command" {
        return api::command(req, handler, token, Some(peer)).await;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET, or POST /api/v1/command with the http_token\n",
        );
    }
    match req.uri().path() {
        "/" | "/index.html" => reply(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD.into()),
        "/api/v1/status" => json(handler.ask(ControlRequest::Status).await),
        "/api/v1/connections" => json(handler.ask(ControlRequest::Connections).await),
        "/api/v1/events" => api::events(handler),
        "/metrics" => {
            let st = handler.reader.metrics_status().await;
            // Prometheus asks for OpenMetrics; anyone else gets the
            // classic text format (curl, promtool check metrics).
            let om = req
                .headers()
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.contains("application/openmetrics-text"));
            if om {
                reply(
                    StatusCode::OK,
                    crate::metrics::OPENMETRICS,
                    crate::metrics::render_openmetrics(&st).into_bytes(),
                )
            } else {
                reply(
                    StatusCode::OK,
                    crate::metrics::TEXT,
                    crate::metrics::render_text(&st).into_bytes(),
                )
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /, /api/v1/status or /metrics\n",
        ),
    }
}

fn json(r: ControlResponse) -> Response<Body> {
    let (status, body) = match &r {
        ControlResponse::Status(s) => (StatusCode::OK, serde_json::to_vec(s)),
        ControlResponse::Connections { connections } => {
            (StatusCode::OK, serde_json::to_vec(connections))
        }
        other => (StatusCode::INTERNAL_SERVER_ERROR, serde_json::to_vec(other)),
    };
    match body {
        Ok(b) => reply(status, "application/json", b),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    reply(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

fn reply(status: StatusCode, ctype: &str, body: Vec<u8>) -> Response<Body> {
    api::full(status, ctype, body)
}
