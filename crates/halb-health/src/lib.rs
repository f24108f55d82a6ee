//! Health checking, the first slice of issue 3.
//!
//! - [`spec`]: what a check is ([`CheckSpec`], [`ProbeSpec`]) and how its
//!   timing defaults from global to virtual service to real server
//!   ([`Params`], [`resolve`]).
//! - [`engine`]: the sans-IO check engine: scheduling with spread, shared
//!   probes, timeouts, rise/fall. No I/O, no clock: time comes in as `now`.
//! - [`probe`]: the I/O shell's probes (tokio): tcp, http, external
//!   command, redis, smtp, dns, udp, icmp, mysql, pgsql, the ldirectord
//!   services (simpletcp, ftp, imap, pop, nntp, ldap, radius), behind the
//!   [`Prober`] trait; https, imaps, pops and ldaps with rustls.
//! - [`driver`]: the tokio loop that runs the engine with a prober and
//!   reports [`Event`]s; what the daemon embeds.
//!
//! `probe` and `driver` (and tokio, rustls, socket2, nix with them) are
//! behind the default feature `probes`; with `default-features = false`
//! the crate is the sans-IO part only.
#![cfg_attr(test, allow(clippy::unwrap_used))]

#[cfg(feature = "probes")]
pub mod driver;
pub mod engine;
#[cfg(feature = "probes")]
pub mod probe;
pub mod spec;

#[cfg(feature = "probes")]
pub use driver::{drive, Event};
pub use engine::{Action, CheckId, CheckStatus, Engine, Health, ProbeId, ProbeOutcome};
#[cfg(feature = "probes")]
pub use probe::{NetProber, Prober};
pub use spec::{
    encode_name, resolve, BodyRegex, CheckSpec, ClientCert, DnsSpec, DnsType, ExternalSpec,
    FtpSpec, HttpMethod, HttpSpec, InitialState, LdapSpec, MailSpec, Params, ProbeSpec, RadiusSpec,
    RedisSpec, SimpleTcpSpec, SmtpSpec, SqlSpec, Timing, TlsSpec, UdpSpec,
};
