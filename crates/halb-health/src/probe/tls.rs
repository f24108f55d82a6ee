//! TLS for the HTTPS probe: rustls with the ring provider (no C toolchain
//! beyond ring's own, no OpenSSL).
//!
//! Client configurations are built once and cached per (verify, CA file,
//! client certificate, the files' modification times), so 10,000 checks do
//! not parse trust anchors 10,000 times a second, and a replaced file is
//! picked up. The files are stat'ed (and read once) on the runtime thread:
//! small, local, and cheaper than a blocking-pool hop.

use crate::spec::{ClientCert, TlsSpec};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;
use tokio_rustls::TlsConnector;

/// The files' roles and paths, with their modification times.
type Key = (bool, Option<PathBuf>, Option<ClientCert>, Vec<SystemTime>);

/// The connector for `spec`, from the cache or built.
pub fn connector(spec: &TlsSpec) -> Result<TlsConnector, String> {
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<ClientConfig>>>> = OnceLock::new();
    let files = spec.ca_file.iter().chain(
        spec.client_cert
            .iter()
            .flat_map(|c| [&c.cert_file, &c.key_file]),
    );
    let mut mtimes = Vec::new();
    for path in files {
        let mtime = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(|e| format!("TLS file {}: {e}", path.display()))?;
        mtimes.push(mtime);
    }
    let key = (
        spec.verify,
        spec.ca_file.clone(),
        spec.client_cert.clone(),
        mtimes,
    );
    let cache = CACHE.get_or_init(Default::default);
    if let Some(config) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(TlsConnector::from(config));
    }
    let config = Arc::new(build(spec)?);
    if let Ok(mut c) = cache.lock() {
        c.insert(key, config.clone());
    }
    Ok(TlsConnector::from(config))
}

fn build(spec: &TlsSpec) -> Result<ClientConfig, String> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?;
    let builder = if spec.verify {
        let mut roots = RootCertStore::empty();
        match &spec.ca_file {
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Some(path) => {
                for cert in read_certs(path)? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("CA file {}: {e}", path.display()))?;
                }
            }
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    };
    match &spec.client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some(client) => {
            let chain = read_certs(&client.cert_file)?;
            let key = PrivateKeyDer::from_pem_file(&client.key_file)
                .map_err(|e| format!("client key {}: {e}", client.key_file.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate {}: {e}", client.cert_file.display()))
        }
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("certificate file {}: {e}", path.display()))?
        .collect();
    let certs = certs.map_err(|e| format!("certificate file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "certificate file {}: no certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// The name sent as SNI and verified: the configured one, else the Host
/// header without its port, else the target's IP address.
pub fn server_name(
    spec: &TlsSpec,
    host: Option<&str>,
    target: SocketAddr,
) -> Result<ServerName<'static>, String> {
    let name = match (&spec.server_name, host) {
        (Some(name), _) => name.clone(),
        (None, Some(host)) => strip_port(host).to_string(),
        (None, None) => return Ok(ServerName::IpAddress(target.ip().into())),
    };
    ServerName::try_from(name.clone()).map_err(|e| format!("TLS server name {name:?}: {e}"))
}

/// A byte stream a probe talks over: TCP or TLS over TCP.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// Connects to `target`, with TLS from the first byte when `tls` is set
/// (imaps, pops, ldaps, simpletcp over TLS). The reason of a failure
/// names the step.
pub async fn connect(target: SocketAddr, tls: Option<&TlsSpec>) -> Result<Box<dyn Stream>, String> {
    let tcp = tokio::net::TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect to {target}: {e}"))?;
    match tls {
        None => Ok(Box::new(tcp)),
        Some(spec) => Ok(Box::new(upgrade(tcp, spec, target).await?)),
    }
}

/// A TLS handshake over an open stream (STARTTLS, or right after the
/// connect); the server name is [`TlsSpec::server_name`] or the IP.
pub async fn upgrade<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: S,
    spec: &TlsSpec,
    target: SocketAddr,
) -> Result<tokio_rustls::client::TlsStream<S>, String> {
    let connector = connector(spec)?;
    let name = server_name(spec, None, target)?;
    connector
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))
}

/// `example.com:8443` → `example.com`, `[::1]:443` → `::1`.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// Accepts any certificate, still checking the handshake signature.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let target: SocketAddr = "192.0.2.1:443".parse().unwrap();
        let spec = TlsSpec::default();
        assert_eq!(
            server_name(&spec, None, target).unwrap(),
            ServerName::IpAddress(target.ip().into())
        );
        let n = server_name(&spec, Some("www.example.com:8443"), target).unwrap();
        assert_eq!(n, ServerName::try_from("www.example.com").unwrap());
        let n = server_name(&spec, Some("[2001:db8::1]:443"), target).unwrap();
        assert_eq!(n, ServerName::try_from("2001:db8::1").unwrap());
        let named = TlsSpec {
            server_name: Some("api.example".into()),
            ..TlsSpec::default()
        };
        let n = server_name(&named, Some("www.example.com"), target).unwrap();
        assert_eq!(n, ServerName::try_from("api.example").unwrap());
        assert!(server_name(
            &TlsSpec {
                server_name: Some("bad name!".into()),
                ..TlsSpec::default()
            },
            None,
            target
        )
        .is_err());
    }

    #[test]
    fn configs_build_and_cache() {
        assert!(connector(&TlsSpec::default()).is_ok());
        assert!(connector(&TlsSpec {
            verify: true,
            ..TlsSpec::default()
        })
        .is_ok());
        let missing = TlsSpec {
            verify: true,
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsSpec::default()
        };
        assert!(connector(&missing)
            .err()
            .unwrap()
            .contains("/nonexistent/ca.pem"));
    }
}
