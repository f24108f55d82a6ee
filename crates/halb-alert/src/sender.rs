//! The I/O shell: delivers the policy's [`Action`]s. A bounded queue (an
//! alert that does not fit is dropped, counted and logged: never unbounded
//! memory, never a wait in the caller) feeds a worker that runs at most
//! [`CONCURRENCY`] deliveries at a time, each with its own timeout and
//! bounded retries. The health engine and the data plane never wait for it.
//!
//! - webhook: `POST` of a JSON body ([`webhook_body`]) with hyper's HTTP/1
//!   client, over rustls (ring) for `https://`; a 2xx answer is success.
//! - e-mail: lettre's tokio SMTP transport (rustls, ring; no native-tls),
//!   STARTTLS off, opportunistic or required, optional AUTH.

use crate::policy::{Action, Alert, Health, Sink, Subject};
use crate::spec::{EmailSpec, Starttls, WebhookSpec};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, Semaphore};

/// Deliveries in flight at most.
pub const CONCURRENCY: usize = 4;
/// Longest wait between two attempts of one alert.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One alert to deliver, stamped with the wall-clock time it was decided.
#[derive(Debug, Clone)]
struct Job {
    action: Action,
    time: SystemTime,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    dropped: AtomicU64,
}

/// What the sender has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AlertStats {
    /// Alerts delivered.
    pub sent: u64,
    /// Alerts given up after their last retry.
    pub failed: u64,
    /// Attempts after a first failed one.
    pub retries: u64,
    /// Alerts dropped because the queue was full.
    pub dropped: u64,
}

/// The handle the daemon keeps; see the module documentation.
#[derive(Debug, Clone)]
pub struct Sender {
    tx: mpsc::Sender<Option<Job>>,
    counters: Arc<Counters>,
}

impl Sender {
    /// Starts the worker on the current tokio runtime. `capacity` bounds
    /// the queue; `director` is this host's name, in every alert.
    pub fn spawn(capacity: usize, director: String) -> (Sender, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Option<Job>>(capacity.max(1));
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let director: Arc<str> = director.into();
        let task = tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(CONCURRENCY));
            // `None` (from `close`): the jobs queued before it are started,
            // then the worker waits for every delivery in flight.
            while let Some(Some(job)) = rx.recv().await {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let c = c.clone();
                let director = director.clone();
                tokio::spawn(async move {
                    deliver(&job, &director, &c).await;
                    drop(permit);
                });
            }
            let all = u32::try_from(CONCURRENCY).unwrap_or(u32::MAX);
            let _ = slots.acquire_many(all).await;
        });
        (Sender { tx, counters }, task)
    }

    /// Queues `action`; drops it (counted, logged) when the queue is full.
    pub fn submit(&self, action: Action) {
        let job = Job {
            action,
            time: SystemTime::now(),
        };
        if let Err(e) = self.tx.try_send(Some(job)) {
            let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let job = match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            };
            let Some(job) = job else { return };
            tracing::warn!(
                "alert queue full: dropped the alert {} ({n} dropped so far)",
                summary(&job.action.alert)
            );
        }
    }

    /// Asks the worker to finish: the alerts queued so far are delivered
    /// (with their retries), then its task ends. Await the task from
    /// [`Sender::spawn`], bounded, to drain. Alerts submitted after this
    /// are dropped.
    pub async fn close(&self) {
        let _ = self.tx.send(None).await;
    }

    pub fn stats(&self) -> AlertStats {
        AlertStats {
            sent: self.counters.sent.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
        }
    }
}

/// "web: real server 192.0.2.10:80 is down (connection refused)";
/// for a resource event, the event as the log says it ("resource group
/// web member nginx: monitor failed: exit 7 (not running) …").
pub fn summary(a: &Alert) -> String {
    match &a.subject {
        Subject::RealServer {
            service, real, to, ..
        } => {
            let what = match (to, a.repeat) {
                (Health::Down, r) if r > 0 => "is still down",
                (Health::Down, _) => "is down",
                (Health::Up, _) => "is up",
            };
            format!("{service}: real server {real} {what} ({})", a.reason)
        }
        Subject::Resource { .. }
        | Subject::VrrpPath { .. }
        | Subject::ConfigSync { .. }
        | Subject::Quorum { .. } => a.reason.clone(),
    }
}

async fn deliver(job: &Job, director: &str, c: &Counters) {
    let (retries, what) = match &job.action.sink {
        Sink::Webhook(w) => (w.retries, format!("webhook {}", w.url)),
        Sink::Email(e) => (
            e.retries,
            format!("mail via {}:{}", e.smtp_host, e.smtp_port),
        ),
    };
    let mut last = String::new();
    for attempt in 0..=retries {
        if attempt > 0 {
            c.retries.fetch_add(1, Ordering::Relaxed);
            let wait = Duration::from_secs(1u64 << attempt.min(5)).min(MAX_BACKOFF);
            tokio::time::sleep(wait).await;
        }
        let r = match &job.action.sink {
            Sink::Webhook(w) => post(w, job, director).await,
            Sink::Email(e) => mail(e, job, director).await,
        };
        match r {
            Ok(()) => {
                c.sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!("alert sent by {what}: {}", summary(&job.action.alert));
                return;
            }
            Err(e) => {
                tracing::debug!("alert by {what}, attempt {}: {e}", attempt + 1);
                last = e;
            }
        }
    }
    c.failed.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        "alert by {what} failed after {} attempt(s): {last}; the alert was {}",
        retries + 1,
        summary(&job.action.alert)
    );
}

/// The webhook's JSON body.
#[derive(Debug, Serialize)]
pub struct WebhookBody<'a> {
    pub service: &'a str,
    pub real_server: String,
    pub old_state: &'static str,
    pub new_state: &'static str,
    pub reason: &'a str,
    /// RFC 3339, UTC.
    pub time: String,
    pub unix_time: u64,
    pub director: &'a str,
    pub daemon_status: &'static str,
    pub repeat: u32,
    pub down_for_secs: Option<u64>,
}

/// The webhook's JSON body for a resource event.
#[derive(Debug, Serialize)]
pub struct ResourceWebhookBody<'a> {
    /// `"resource"`.
    pub subject: &'static str,
    pub group: &'a str,
    /// Absent for the group as a whole.
    pub member: Option<&'a str>,
    /// `failed`, `restarted`, `given_up`, `started`, `blocked`.
    pub event: &'static str,
    pub reason: &'a str,
    /// RFC 3339, UTC.
    pub time: String,
    pub unix_time: u64,
    pub director: &'a str,
    pub daemon_status: &'static str,
}

/// The webhook body of a VRRP path alert.
#[derive(serde::Serialize)]
struct PathWebhookBody<'a> {
    subject: &'static str,
    instance: &'a str,
    path: &'a str,
    peer: Option<String>,
    event: &'static str,
    #[serde(flatten)]
    tail: EventTail<'a>,
}

/// What every event's webhook body ends with.
#[derive(serde::Serialize)]
struct EventTail<'a> {
    reason: &'a str,
    time: String,
    unix_time: u64,
    director: &'a str,
    daemon_status: &'static str,
}

impl<'a> EventTail<'a> {
    fn of(alert: &'a Alert, unix: u64, director: &'a str) -> Self {
        EventTail {
            reason: &alert.reason,
            time: rfc3339(unix),
            unix_time: unix,
            director,
            daemon_status: alert.status.as_str(),
        }
    }
}

#[derive(serde::Serialize)]
struct SyncWebhookBody<'a> {
    subject: &'static str,
    peer: &'a str,
    event: &'static str,
    #[serde(flatten)]
    tail: EventTail<'a>,
}

#[derive(serde::Serialize)]
struct QuorumWebhookBody<'a> {
    subject: &'static str,
    event: &'static str,
    #[serde(flatten)]
    tail: EventTail<'a>,
}

/// The JSON the webhook receives for `alert`.
pub fn webhook_body(alert: &Alert, time: SystemTime, director: &str) -> Vec<u8> {
    let unix = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (service, real, from, to) = match &alert.subject {
        Subject::RealServer {
            service,
            real,
            from,
            to,
        } => (service, real, from, to),
        Subject::Resource {
            group,
            member,
            event,
        } => {
            let body = ResourceWebhookBody {
                subject: "resource",
                group,
                member: member.as_deref(),
                event: event.as_str(),
                reason: &alert.reason,
                time: rfc3339(unix),
                unix_time: unix,
                director,
                daemon_status: alert.status.as_str(),
            };
            return serde_json::to_vec(&body).unwrap_or_default();
        }
        Subject::VrrpPath {
            instance,
            interface,
            peer,
            event,
        } => {
            let body = PathWebhookBody {
                subject: "vrrp_path",
                instance,
                path: interface,
                peer: peer.map(|p| p.to_string()),
                event: event.as_str(),
                tail: EventTail::of(alert, unix, director),
            };
            return serde_json::to_vec(&body).unwrap_or_default();
        }
        Subject::ConfigSync { peer, event } => {
            let body = SyncWebhookBody {
                subject: "config_sync",
                peer,
                event: event.as_str(),
                tail: EventTail::of(alert, unix, director),
            };
            return serde_json::to_vec(&body).unwrap_or_default();
        }
        Subject::Quorum { event } => {
            let body = QuorumWebhookBody {
                subject: "quorum",
                event: event.as_str(),
                tail: EventTail::of(alert, unix, director),
            };
            return serde_json::to_vec(&body).unwrap_or_default();
        }
    };
    let body = WebhookBody {
        service,
        real_server: real.to_string(),
        old_state: from.as_str(),
        new_state: to.as_str(),
        reason: &alert.reason,
        time: rfc3339(unix),
        unix_time: unix,
        director,
        daemon_status: alert.status.as_str(),
        repeat: alert.repeat,
        down_for_secs: alert.down_for.map(|d| d.as_secs()),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `2026-11-22T05:03:28Z` from seconds since the epoch.
pub fn rfc3339(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

async fn post(w: &WebhookSpec, job: &Job, director: &str) -> Result<(), String> {
    let body = webhook_body(&job.action.alert, job.time, director);
    match tokio::time::timeout(w.timeout, post_once(w, body)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {:?}", w.timeout)),
    }
}

async fn post_once(w: &WebhookSpec, body: Vec<u8>) -> Result<(), String> {
    let url = &w.url;
    let addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("resolving {}: {e}", url.host))?;
    let mut last = format!("{} has no address", url.host);
    let mut stream = None;
    for a in addrs {
        match tokio::net::TcpStream::connect(a).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("connecting to {a}: {e}"),
        }
    }
    let stream = stream.ok_or(last)?;
    let req = hyper::Request::post(url.path.as_str())
        .header(hyper::header::HOST, url.authority())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("halb/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("building the request: {e}"))?;
    let status = if url.https {
        let tls = tls_connector(w.ca_file.as_deref())?;
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| format!("TLS name {}: {e}", url.host))?;
        let s = tls
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        send(TokioIo::new(s), req).await?
    } else {
        send(TokioIo::new(stream), req).await?
    };
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", status.as_u16()))
    }
}

async fn send<T>(io: T, req: hyper::Request<Full<Bytes>>) -> Result<hyper::StatusCode, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let r = sender.send_request(req).await;
    conn.abort();
    r.map(|resp| resp.status())
        .map_err(|e| format!("HTTP request: {e}"))
}

/// rustls (ring) verifying against the Mozilla roots, or the PEM
/// certificates of `ca_file` (read at each alert: alerts are rare, and a
/// replaced file is picked up).
fn tls_connector(ca_file: Option<&std::path::Path>) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::pem::PemObject as _;
    static DEFAULT: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    if let (None, Some(c)) = (ca_file, DEFAULT.get()) {
        return Ok(tokio_rustls::TlsConnector::from(c.clone()));
    }
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("webhook_ca_file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("webhook_ca_file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("webhook_ca_file {}: {e}", path.display()))?;
            }
        }
    }
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let c = match ca_file {
        None => DEFAULT.get_or_init(|| config).clone(),
        Some(_) => config,
    };
    Ok(tokio_rustls::TlsConnector::from(c))
}

/// Subject and body of the mail for `alert`.
pub fn mail_text(alert: &Alert, time: SystemTime, director: &str) -> (String, String) {
    let unix = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let subject = format!("halb on {director}: {}", summary(alert));
    let mut body = match &alert.subject {
        Subject::RealServer {
            service,
            real,
            from,
            to,
        } => format!(
            "Virtual service: {service}\nReal server: {real}\nState: {to} (was {from})\nReason: {}\nTime: {}\nDirector: {director}\nDaemon status: {}\n",
            alert.reason,
            rfc3339(unix),
            alert.status,
        ),
        Subject::Resource {
            group,
            member,
            event,
        } => {
            let member = member
                .as_deref()
                .map(|m| format!("Member: {m}\n"))
                .unwrap_or_default();
            format!(
                "Resource group: {group}\n{member}Event: {}\nWhat happened: {}\nTime: {}\nDirector: {director}\nDaemon status: {}\n",
                event.as_str(),
                alert.reason,
                rfc3339(unix),
                alert.status,
            )
        }
        Subject::VrrpPath {
            instance,
            interface,
            peer,
            event,
        } => format!(
            "VRRP instance: {instance}\nPath: {interface}{}\nEvent: {}\nWhat happened: {}\nTime: {}\nDirector: {director}\nDaemon status: {}\n",
            peer.map(|p| format!(" to {p}")).unwrap_or_default(),
            event.as_str(),
            alert.reason,
            rfc3339(unix),
            alert.status,
        ),
        Subject::ConfigSync { peer, event } => format!(
            "Peer director: {peer}\nEvent: config {}\nWhat happened: {}\nTime: {}\nDirector: {director}\nDaemon status: {}\n",
            event.as_str(),
            alert.reason,
            rfc3339(unix),
            alert.status,
        ),
        Subject::Quorum { event } => format!(
            "Quorum: {}\nWhat happened: {}\nTime: {}\nDirector: {director}\nDaemon status: {}\n",
            event.as_str(),
            alert.reason,
            rfc3339(unix),
            alert.status,
        ),
    };
    if let Some(d) = alert.down_for {
        body.push_str(&format!("Down for: {}s\n", d.as_secs()));
    }
    if alert.repeat > 0 {
        body.push_str(&format!(
            "Repeat: {} (repeated while the real server stays down)\n",
            alert.repeat
        ));
    }
    (subject, body)
}

async fn mail(e: &EmailSpec, job: &Job, director: &str) -> Result<(), String> {
    match tokio::time::timeout(e.timeout, mail_once(e, job, director)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {:?}", e.timeout)),
    }
}

async fn mail_once(e: &EmailSpec, job: &Job, director: &str) -> Result<(), String> {
    use lettre::message::{header::ContentType, Mailbox};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
    use lettre::transport::smtp::extension::ClientId;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let (subject, body) = mail_text(&job.action.alert, job.time, director);
    let from = e.from.clone().unwrap_or_else(|| format!("halb@{director}"));
    let mut m = Message::builder()
        .from(
            from.parse::<Mailbox>()
                .map_err(|x| format!("sender {from}: {x}"))?,
        )
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for to in &e.to {
        m = m.to(to
            .parse::<Mailbox>()
            .map_err(|x| format!("recipient {to}: {x}"))?);
    }
    let msg = m
        .body(body)
        .map_err(|x| format!("building the mail: {x}"))?;

    let tls = if e.starttls == Starttls::Off {
        Tls::None
    } else {
        let mut b = TlsParameters::builder(e.smtp_host.clone());
        if let Some(path) = &e.ca_file {
            let pem = tokio::fs::read(path)
                .await
                .map_err(|x| format!("smtp_ca_file {}: {x}", path.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|x| format!("smtp_ca_file {}: {x}", path.display()))?;
            b = b
                .certificate_store(CertificateStore::None)
                .add_root_certificate(cert);
        }
        let params = b.build_rustls().map_err(|x| format!("TLS: {x}"))?;
        if e.starttls == Starttls::Required {
            Tls::Required(params)
        } else {
            Tls::Opportunistic(params)
        }
    };
    let mut t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(e.smtp_host.as_str())
        .port(e.smtp_port)
        .timeout(Some(e.timeout))
        .hello_name(ClientId::Domain(director.to_owned()))
        .tls(tls);
    if let Some((user, pass)) = &e.auth {
        t = t.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    t.build()
        .send(msg)
        .await
        .map(|_| ())
        .map_err(|x| format!("SMTP: {x}"))
}

/// This host's name, for alerts (`/proc/sys/kernel/hostname`, else
/// `localhost`).
pub fn director_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::DaemonStatus;

    fn alert() -> Alert {
        Alert {
            subject: Subject::RealServer {
                service: "web".into(),
                real: "192.0.2.10:80".parse().unwrap(),
                from: Health::Up,
                to: Health::Down,
            },
            reason: "connection refused".into(),
            status: DaemonStatus::Running,
            repeat: 0,
            down_for: None,
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_323_808), "2026-11-22T05:03:28Z");
    }

    #[test]
    fn config_sync_and_path_bodies() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_323_808);
        let mut a = alert();
        a.subject = Subject::ConfigSync {
            peer: "d2".into(),
            event: crate::SyncAlert::Differs,
        };
        a.reason = "config sync: config differs from d2".into();
        let v: serde_json::Value = serde_json::from_slice(&webhook_body(&a, t, "d1")).unwrap();
        assert_eq!(v["subject"], "config_sync");
        assert_eq!(v["peer"], "d2");
        assert_eq!(v["event"], "differs");
        assert_eq!(v["reason"], "config sync: config differs from d2");
        assert_eq!(v["director"], "d1");
        assert_eq!(v["time"], "2026-11-22T05:03:28Z");
        let (subject, body) = mail_text(&a, t, "d1");
        assert!(subject.contains("config differs from d2"), "{subject}");
        assert!(
            body.contains("Peer director: d2\nEvent: config differs\n"),
            "{body}"
        );
        a.subject = Subject::VrrpPath {
            instance: "VI_1".into(),
            interface: "eth1".into(),
            peer: None,
            event: crate::PathAlert::Dead,
        };
        let v: serde_json::Value = serde_json::from_slice(&webhook_body(&a, t, "d1")).unwrap();
        assert_eq!(v["subject"], "vrrp_path");
        assert_eq!(v["path"], "eth1");
        assert_eq!(v["unix_time"], 1_795_323_808u64);
        assert_eq!(v["daemon_status"], "running");
    }

    #[test]
    fn body_and_mail() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_323_808);
        let v: serde_json::Value =
            serde_json::from_slice(&webhook_body(&alert(), t, "lb1")).unwrap();
        assert_eq!(v["service"], "web");
        assert_eq!(v["real_server"], "192.0.2.10:80");
        assert_eq!(v["old_state"], "up");
        assert_eq!(v["new_state"], "down");
        assert_eq!(v["reason"], "connection refused");
        assert_eq!(v["time"], "2026-11-22T05:03:28Z");
        assert_eq!(v["director"], "lb1");
        assert_eq!(v["daemon_status"], "running");
        let (s, b) = mail_text(&alert(), t, "lb1");
        assert_eq!(
            s,
            "halb on lb1: web: real server 192.0.2.10:80 is down (connection refused)"
        );
        assert!(b.contains("Reason: connection refused\n"), "{b}");
    }
}
