//! The probes: the I/O shell around the engine (tokio).
//!
//! [`run`] runs one probe for a [`CheckSpec`] and always returns by
//! `spec.timing.timeout`: the whole probe (connect, write, every read, a
//! child process) sits under one `tokio::time::timeout`, reads are
//! bounded ([`http::MAX_RESPONSE`], [`line::MAX_LINE`], one datagram (a RADIUS one: [`radius::MAX_PACKET`]),
//! [`crate::spec::SIMPLETCP_MAX_REPLY`] for simpletcp and an FTP file,
//! [`mysql::MAX_PACKET`], [`pgsql::MAX_MESSAGE`], [`ldap::MAX_MESSAGE`]), and a child process is killed with its
//! process group when the timeout drops it. The engine enforces the same
//! timeout on its side, so a probe that misbehaves still cannot stall it.

pub mod dns;
pub mod external;
pub mod ftp;
pub mod http;
pub mod http_proxy;
pub mod icmp;
pub mod imap;
pub mod ldap;
pub mod line;
pub mod mysql;
pub mod nntp;
pub mod pgsql;
pub mod pop;
pub mod radius;
pub mod redis;
pub mod simpletcp;
pub mod sip;
pub mod smtp;
pub mod tcp;
pub mod tls;
pub mod udp;

use crate::engine::ProbeOutcome;
use crate::spec::{CheckSpec, ProbeSpec};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Runs probes. The daemon uses [`NetProber`]; tests of the shell can use
/// a scripted one.
pub trait Prober: Send + Sync + 'static {
    /// Runs the probe of `spec`; must end by `spec.timing.timeout`.
    fn probe(&self, spec: Arc<CheckSpec>) -> BoxFuture<ProbeOutcome>;
}

/// The real probes, over the network and processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetProber;

impl Prober for NetProber {
    fn probe(&self, spec: Arc<CheckSpec>) -> BoxFuture<ProbeOutcome> {
        Box::pin(async move { run(&spec).await })
    }
}

/// Runs the probe of `spec`, bounded by its timeout.
pub async fn run(spec: &CheckSpec) -> ProbeOutcome {
    let timeout = spec.timing.timeout;
    let probe = async {
        match &spec.probe {
            ProbeSpec::Tcp => tcp::probe(spec.target).await,
            // Boxed: its buffers and TLS state (~12 KiB) would otherwise
            // size every probe's future, tcp ones included.
            ProbeSpec::Http(http) => Box::pin(http::probe(spec.target, http)).await,
            ProbeSpec::External(ext) => external::probe(spec.target, ext).await,
            ProbeSpec::Redis(r) => redis::probe(spec.target, r).await,
            ProbeSpec::Smtp(s) => Box::pin(smtp::probe(spec.target, s)).await,
            ProbeSpec::Dns(d) => dns::probe(spec.target, d).await,
            ProbeSpec::Udp(u) => udp::probe(spec.target, u, timeout).await,
            // Its own wait ends a little before the timeout, for a clear reason.
            ProbeSpec::Icmp => icmp::probe(spec.target.ip(), timeout - timeout / 20).await,
            ProbeSpec::Mysql(m) => mysql::probe(spec.target, m).await,
            ProbeSpec::Pgsql(p) => pgsql::probe(spec.target, p).await,
            ProbeSpec::SimpleTcp(t) => Box::pin(simpletcp::probe(spec.target, t)).await,
            ProbeSpec::Ftp(f) => ftp::probe(spec.target, f).await,
            ProbeSpec::Imap(m) => Box::pin(imap::probe(spec.target, m)).await,
            ProbeSpec::Pop(m) => Box::pin(pop::probe(spec.target, m)).await,
            ProbeSpec::Nntp => nntp::probe(spec.target).await,
            ProbeSpec::Ldap(l) => Box::pin(ldap::probe(spec.target, l)).await,
            // Its attempts end a little before the timeout, for a clear reason.
            ProbeSpec::Radius(r) => radius::probe(spec.target, r, timeout).await,
            ProbeSpec::Oracle => {
                ProbeOutcome::down("oracle is not supported: it needs Oracle's client library")
            }
            ProbeSpec::On => ProbeOutcome::up("forced on"),
            ProbeSpec::Off => ProbeOutcome::down("forced off"),
            ProbeSpec::Sip(s) => sip::probe(spec.target, s).await,
            ProbeSpec::HttpProxy(h) => Box::pin(http_proxy::probe(spec.target, h)).await,
        }
    };
    match tokio::time::timeout(timeout, probe).await {
        Ok(outcome) => outcome,
        Err(_) => ProbeOutcome::down(format!("timed out after {timeout:?}")),
    }
}
