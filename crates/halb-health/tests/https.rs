//! The HTTPS probe against a rustls server on loopback with a self-signed
//! certificate made by the test: SNI, verification on (with the cert as
//! CA file) and off, wrong names, untrusted certificates, client
//! certificates, plain HTTP against TLS and TLS against plain. Bounded by
//! tokio timeouts.
#![allow(clippy::unwrap_used)]

use halb_health::probe::run;
use halb_health::{
    CheckSpec, ClientCert, HttpSpec, InitialState, ProbeOutcome, ProbeSpec, Timing, TlsSpec,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

struct Server {
    addr: SocketAddr,
    ca_file: PathBuf,
    sni: Arc<Mutex<Vec<Option<String>>>>,
}

async fn tls_server(tag: &str) -> Server {
    tls_server_with(tag, None).await
}

/// A server; with `client_ca`, it requires a client certificate signed by it.
async fn tls_server_with(
    tag: &str,
    client_ca: Option<rustls::pki_types::CertificateDer<'static>>,
) -> Server {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("halb-health-https-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, cert.cert.pem()).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sni = Arc::new(Mutex::new(Vec::new()));
    let seen = sni.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                seen.lock()
                    .unwrap()
                    .push(tls.get_ref().1.server_name().map(str::to_string));
                let mut buf = [0u8; 2048];
                let _ = tls.read(&mut buf).await;
                let _ = tls.write_all(b"HTTP/1.0 200 OK\r\n\r\nsecure OK").await;
                // Close without close_notify, as many servers do.
            });
        }
    });
    Server { addr, ca_file, sni }
}

fn spec(target: SocketAddr, tls: Option<TlsSpec>) -> CheckSpec {
    let mut http = HttpSpec::get("/health");
    http.body_contains = Some("secure OK".into());
    http.tls = tls;
    CheckSpec {
        target,
        probe: ProbeSpec::Http(http),
        timing: Timing {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
            rise: 1,
            fall: 1,
            delay_before_retry: Duration::from_secs(1),
            warmup: Duration::ZERO,
            initial: InitialState::Down,
        },
    }
}

async fn probe(spec: &CheckSpec) -> ProbeOutcome {
    tokio::time::timeout(Duration::from_secs(20), run(spec))
        .await
        .unwrap()
}

#[tokio::test]
async fn verification_off_accepts_self_signed_and_sends_sni() {
    let s = tls_server("off").await;
    let tls = TlsSpec {
        server_name: Some("backend.example".into()),
        verify: false,
        ca_file: None,
        client_cert: None,
    };
    let o = probe(&spec(s.addr, Some(tls))).await;
    assert!(o.ok, "{o:?}");
    // No name configured: the IP address, which is not sent as SNI.
    let o = probe(&spec(s.addr, Some(TlsSpec::default()))).await;
    assert!(o.ok, "{o:?}");
    let sni = s.sni.lock().unwrap().clone();
    assert_eq!(sni, vec![Some("backend.example".to_string()), None]);
}

#[tokio::test]
async fn verification_on() {
    let s = tls_server("on").await;
    let trusted = TlsSpec {
        server_name: Some("localhost".into()),
        verify: true,
        ca_file: Some(s.ca_file.clone()),
        client_cert: None,
    };
    let o = probe(&spec(s.addr, Some(trusted.clone()))).await;
    assert!(o.ok, "{o:?}");
    // The Host header supplies the name when none is configured.
    let mut via_host = spec(
        s.addr,
        Some(TlsSpec {
            server_name: None,
            ..trusted.clone()
        }),
    );
    if let ProbeSpec::Http(h) = &mut via_host.probe {
        h.host = Some("localhost:8443".into());
    }
    assert!(probe(&via_host).await.ok);
    // Wrong name.
    let wrong = TlsSpec {
        server_name: Some("other.example".into()),
        ..trusted.clone()
    };
    let o = probe(&spec(s.addr, Some(wrong))).await;
    assert!(!o.ok && o.reason.contains("TLS"), "{o:?}");
    // Not in the bundled roots.
    let public = TlsSpec {
        ca_file: None,
        client_cert: None,
        ..trusted
    };
    let o = probe(&spec(s.addr, Some(public))).await;
    assert!(!o.ok && o.reason.contains("TLS"), "{o:?}");
    let _ = std::fs::remove_dir_all(s.ca_file.parent().unwrap());
}

#[tokio::test]
async fn protocol_mismatches_fail() {
    let s = tls_server("mismatch").await;
    // Plain HTTP to a TLS port.
    let o = probe(&spec(s.addr, None)).await;
    assert!(!o.ok, "{o:?}");
    // TLS to a plain port that answers HTTP.
    let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = plain.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = plain.accept().await {
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\nsecure OK").await;
        }
    });
    let o = probe(&spec(addr, Some(TlsSpec::default()))).await;
    assert!(!o.ok && o.reason.contains("TLS"), "{o:?}");
    let _ = std::fs::remove_dir_all(s.ca_file.parent().unwrap());
}

#[tokio::test]
async fn client_certificate() {
    let client = rcgen::generate_simple_self_signed(vec!["probe.halb".to_string()]).unwrap();
    let s = tls_server_with("client", Some(client.cert.der().clone())).await;
    let dir = s.ca_file.parent().unwrap().to_path_buf();
    std::fs::write(dir.join("client.pem"), client.cert.pem()).unwrap();
    std::fs::write(dir.join("client.key"), client.key_pair.serialize_pem()).unwrap();
    let with_cert = TlsSpec {
        server_name: Some("localhost".into()),
        verify: true,
        ca_file: Some(s.ca_file.clone()),
        client_cert: Some(ClientCert {
            cert_file: dir.join("client.pem"),
            key_file: dir.join("client.key"),
        }),
    };
    let o = probe(&spec(s.addr, Some(with_cert.clone()))).await;
    assert!(o.ok, "{o:?}");
    let without = TlsSpec {
        client_cert: None,
        ..with_cert.clone()
    };
    let o = probe(&spec(s.addr, Some(without))).await;
    assert!(!o.ok, "{o:?}");
    let missing_key = TlsSpec {
        client_cert: Some(ClientCert {
            cert_file: dir.join("client.pem"),
            key_file: dir.join("nonexistent.key"),
        }),
        ..with_cert
    };
    let o = probe(&spec(s.addr, Some(missing_key))).await;
    assert!(!o.ok && o.reason.contains("nonexistent.key"), "{o:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
