//! The sender shell on loopback: webhook POSTs over http and https (a
//! self-signed certificate trusted through `ca_file`), retries after
//! failures, and a full queue that drops and counts instead of growing.
//! Every wait is a bounded poll; no timing is asserted.
#![allow(clippy::unwrap_used)]

use halb_alert::{Action, Alert, DaemonStatus, Health, Sender, Sink, WebhookSpec, WebhookUrl};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

type Got = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// Reads one POST; answers 500 to the first `fail_first` requests of the
/// server, then 200.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(s: S, n: usize, fail_first: usize, got: Got) {
    let mut r = BufReader::new(s);
    let mut first = String::new();
    if r.read_line(&mut first).await.is_err() {
        return;
    }
    let path = first.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut len = 0;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    if r.read_exact(&mut body).await.is_err() {
        return;
    }
    let status = if n < fail_first {
        "500 Internal Server Error"
    } else {
        got.lock()
            .unwrap()
            .push((path, serde_json::from_slice(&body).unwrap()));
        "200 OK"
    };
    let _ = r
        .get_mut()
        .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
        .await;
    let _ = r.get_mut().shutdown().await;
}

/// A webhook receiver; with `tls`, behind rustls with that certificate.
async fn receiver(fail_first: usize, tls: Option<&rcgen::CertifiedKey>) -> (u16, Got) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Got = Arc::default();
    let acceptor = tls.map(|c| {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key_pair.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![c.cert.der().clone()], key)
        .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let g = got.clone();
    let count = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::Relaxed);
            let g = g.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    Some(a) => {
                        if let Ok(s) = a.accept(tcp).await {
                            serve(s, n, fail_first, g).await;
                        }
                    }
                    None => serve(tcp, n, fail_first, g).await,
                }
            });
        }
    });
    (port, got)
}

fn action(url: &str, retries: u32, ca_file: Option<PathBuf>) -> Action {
    Action {
        alert: Alert {
            subject: halb_alert::Subject::RealServer {
                service: "web".into(),
                real: "192.0.2.10:80".parse().unwrap(),
                from: Health::Up,
                to: Health::Down,
            },
            reason: "connection refused".into(),
            status: DaemonStatus::Running,
            repeat: 0,
            down_for: None,
        },
        sink: Sink::Webhook(Arc::new(WebhookSpec {
            url: WebhookUrl::parse(url).unwrap(),
            timeout: Duration::from_secs(5),
            retries,
            ca_file,
        })),
    }
}

async fn wait<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn webhook_over_http_retries_after_a_500() {
    let (port, got) = receiver(1, None).await;
    let (sender, task) = Sender::spawn(16, "lb1".into());
    sender.submit(action(
        &format!("http://127.0.0.1:{port}/hook?x=1"),
        2,
        None,
    ));
    let stats = wait(|| Some(sender.stats()).filter(|s| s.sent == 1)).await;
    assert_eq!((stats.retries, stats.failed, stats.dropped), (1, 0, 0));
    let (path, body) = got.lock().unwrap()[0].clone();
    assert_eq!(path, "/hook?x=1");
    assert_eq!(body["new_state"], "down");
    assert_eq!(body["director"], "lb1");
    task.abort();
}

#[tokio::test]
async fn webhook_over_https_with_a_private_ca() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!("halb-alert-https-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let (port, got) = receiver(0, Some(&cert)).await;
    let (sender, task) = Sender::spawn(16, "lb1".into());
    let url = format!("https://127.0.0.1:{port}/tls");
    // Not trusted by the Mozilla roots: fails, with no retry.
    sender.submit(action(&url, 0, None));
    wait(|| Some(sender.stats()).filter(|s| s.failed == 1)).await;
    assert!(got.lock().unwrap().is_empty());
    // Trusted through ca_file: delivered.
    sender.submit(action(&url, 0, Some(ca)));
    wait(|| Some(sender.stats()).filter(|s| s.sent == 1)).await;
    assert_eq!(got.lock().unwrap()[0].0, "/tls");
    task.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_drops_and_counts() {
    // A receiver that accepts and never answers: deliveries hang until
    // their timeout.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            h.lock().unwrap().push(s);
        }
    });
    let (sender, task) = Sender::spawn(2, "lb1".into());
    // On this one thread the worker cannot run between these submits:
    // two fit in the queue, eight are dropped.
    for _ in 0..10 {
        sender.submit(action(&format!("http://127.0.0.1:{port}/"), 0, None));
    }
    assert_eq!(sender.stats().dropped, 8);
    // The two queued ones are delivered (and hang until their timeout).
    wait(|| Some(held.lock().unwrap().len()).filter(|n| *n == 2)).await;
    task.abort();
}
