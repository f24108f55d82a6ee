//! What a check is: its target, its probe and its timing, and how the
//! timing parameters default from the global level to the virtual service
//! to the real server (as keepalived does).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

/// One check, fully resolved. Two checks with equal specs are the same
/// probe: the engine runs it once and gives the result to both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct CheckSpec {
    /// The address probed. Usually the real server, but may differ
    /// (ldirectord `checkport`, keepalived `connect_ip`/`connect_port`).
    pub target: SocketAddr,
    pub probe: ProbeSpec,
    pub timing: Timing,
}

/// Timing and thresholds of one check, resolved from [`Params`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Timing {
    /// Time between the starts of two probes while the state is settled.
    pub interval: Duration,
    /// A probe that has not reported this long after its start has failed.
    pub timeout: Duration,
    /// Consecutive successes that bring a Down check Up (at least 1).
    pub rise: u32,
    /// Consecutive failures that bring an Up check Down (at least 1;
    /// ldirectord `failurecount`, keepalived `retry`).
    pub fall: u32,
    /// Time between the starts of two probes while an Up check is
    /// counting failures towards `fall` (keepalived `delay_before_retry`).
    pub delay_before_retry: Duration,
    /// The first probe is delayed by an extra, deterministic pseudo-random
    /// fraction of this (keepalived `warmup`).
    pub warmup: Duration,
    /// The state before the first result.
    pub initial: InitialState,
}

/// The state of a check before its first result (HAProxy's `init-state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub enum InitialState {
    /// Up; `fall` failures take it Down (keepalived without `alpha`).
    FullyUp,
    /// Up, but the first failure takes it Down.
    Up,
    /// Down, but the first success takes it Up (ldirectord: a real server
    /// joins the pool after its first successful check). The default:
    /// no traffic to an unverified server, and no `rise × interval` wait
    /// at start-up.
    #[default]
    Down,
    /// Down; `rise` successes take it Up (keepalived with `alpha`).
    FullyDown,
}

/// How to probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ProbeSpec {
    /// TCP connect; up when the handshake completes.
    Tcp,
    /// HTTP/1.0 request over TCP.
    Http(HttpSpec),
    /// Run a command: exit 0 up, 1 down, 2..=255 up with weight `code - 2`
    /// when `dynamic_weight` (keepalived MISC_CHECK `misc_dynamic`).
    External(ExternalSpec),
    /// Redis: optional `AUTH`, then `PING`; up on `+PONG`.
    Redis(RedisSpec),
    /// SMTP: 220 banner, `EHLO` (or `HELO` when EHLO is refused), `QUIT`.
    Smtp(SmtpSpec),
    /// DNS over UDP: one query, up on a matching NOERROR reply.
    Dns(DnsSpec),
    /// UDP: send a payload; up on a reply, or unless ICMP port
    /// unreachable comes back.
    Udp(UdpSpec),
    /// ICMP echo (ping) to the target's IP address; the port is unused.
    Icmp,
    /// MySQL/MariaDB: handshake v10; with a user, login
    /// (`mysql_native_password`, `caching_sha2_password` fast path),
    /// optional database and query.
    Mysql(SqlSpec),
    /// PostgreSQL: with a user, StartupMessage and login (trust, cleartext,
    /// MD5, SCRAM-SHA-256), optional query; without, an SSLRequest answered.
    Pgsql(SqlSpec),
    /// A string sent over TCP (optionally TLS), the reply read bounded
    /// and matched against a regular expression (ldirectord `simpletcp`).
    SimpleTcp(SimpleTcpSpec),
    /// FTP: 220 banner, `USER`/`PASS`, optionally `PASV` + `RETR` of a
    /// file matched against a regular expression, `QUIT`.
    Ftp(FtpSpec),
    /// IMAP: `* OK` greeting (over TLS for imaps), `LOGIN` when a user is
    /// set, `LOGOUT`.
    Imap(MailSpec),
    /// POP3: `+OK` greeting (over TLS for pops), `USER`/`PASS` when a user
    /// is set, `QUIT`.
    Pop(MailSpec),
    /// NNTP: a 200 or 201 greeting, `QUIT`.
    Nntp,
    /// LDAPv3 (over TLS for ldaps): a simple bind (anonymous without a
    /// DN), optionally a base-object search whose entry's DN is matched,
    /// then an unbind.
    Ldap(LdapSpec),
    /// RADIUS (RFC 2865) over UDP: an Access-Request hidden with the
    /// shared secret; an Access-Accept (or, unless required otherwise, an
    /// Access-Reject) with a valid response authenticator is up.
    Radius(RadiusSpec),
    /// Oracle's TNS protocol needs Oracle's client library: refused at
    /// config check, never built by halb-config. Probing it reports down.
    Oracle,
    /// Forced up (ldirectord `checktype = on`); never probed.
    On,
    /// Forced down (ldirectord `checktype = off`); never probed.
    Off,
    /// SIP: an `OPTIONS` request over UDP or TCP; up on a final response
    /// (2xx–6xx unless narrowed) whose Call-ID and CSeq match; 1xx ignored.
    Sip(SipSpec),
    /// An HTTP proxy: `GET http://origin/path HTTP/1.1` sent to the real
    /// server (the proxy), judged as [`ProbeSpec::Http`]; `path` holds the
    /// absolute URL (ldirectord `http_proxy`).
    HttpProxy(HttpSpec),
}

impl ProbeSpec {
    /// The probe used when a check names no type, picked by the service
    /// port as ldirectord does: 80 → HTTP `GET /` expecting 2xx, 443 → the
    /// same over TLS without verification, 25 → SMTP, 587 → SMTP with
    /// STARTTLS when offered (submission), 21 → FTP (anonymous login),
    /// 143/993 → IMAP/IMAPS, 110/995 → POP3/POP3S, 119 → NNTP, 389/636 →
    /// LDAP/LDAPS (an anonymous bind and a search of the root DSE), 53 →
    /// DNS (`. SOA`), 6379 → Redis `PING`, 3306 → MySQL handshake, 5432 →
    /// PostgreSQL, 1812 → RADIUS with an empty secret (halb-config then
    /// asks for `secret`), 5060 → SIP `OPTIONS` over UDP, anything else →
    /// TCP connect. (ldirectord's 3128 → http_proxy needs the URL to fetch,
    /// so it is the config's choice when one is given, not a port default.)
    pub fn default_for_port(port: u16) -> ProbeSpec {
        match port {
            25 => ProbeSpec::Smtp(SmtpSpec::default()),
            587 => ProbeSpec::Smtp(SmtpSpec::submission()),
            21 => ProbeSpec::Ftp(FtpSpec::default()),
            143 => ProbeSpec::Imap(MailSpec::default()),
            993 => ProbeSpec::Imap(MailSpec::tls()),
            110 => ProbeSpec::Pop(MailSpec::default()),
            995 => ProbeSpec::Pop(MailSpec::tls()),
            119 => ProbeSpec::Nntp,
            389 => ProbeSpec::Ldap(LdapSpec::root_dse()),
            1812 => ProbeSpec::Radius(RadiusSpec::new("")),
            636 => ProbeSpec::Ldap(LdapSpec::tls()),
            53 => ProbeSpec::Dns(DnsSpec::default()),
            5060 => ProbeSpec::Sip(SipSpec::default()),
            6379 => ProbeSpec::Redis(RedisSpec::default()),
            3306 => ProbeSpec::Mysql(SqlSpec::default()),
            5432 => ProbeSpec::Pgsql(SqlSpec::default()),
            80 => ProbeSpec::Http(HttpSpec::get("/")),
            443 => ProbeSpec::Http(HttpSpec {
                tls: Some(TlsSpec::default()),
                ..HttpSpec::get("/")
            }),
            _ => ProbeSpec::Tcp,
        }
    }
}

/// GET or HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
        }
    }
}

/// An HTTP check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct HttpSpec {
    pub method: HttpMethod,
    /// Request target, e.g. `/health`.
    pub path: String,
    /// `Host` header (ldirectord `virtualhost`); the target address when
    /// `None`.
    pub host: Option<String>,
    /// Accepted status codes; empty means `200..=299` (keepalived's default).
    pub expect_status: Vec<RangeInclusive<u16>>,
    /// The body must contain this.
    pub body_contains: Option<String>,
    /// MD5 of the whole body must be this (keepalived `digest`, as printed
    /// by `genhash`).
    pub body_md5: Option<[u8; 16]>,
    /// The body must match this regular expression.
    pub body_regex: Option<BodyRegex>,
    /// HTTPS when set.
    pub tls: Option<TlsSpec>,
}

/// TLS parameters of an HTTPS check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct TlsSpec {
    /// SNI, and the name verified. Defaults to [`HttpSpec::host`] without
    /// its port, else the target's IP address (no SNI is sent for an IP).
    pub server_name: Option<String>,
    /// Verify the certificate chain and name. Off: any certificate is
    /// accepted (the handshake signature is still checked).
    pub verify: bool,
    /// PEM trust anchors instead of the bundled Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain and private key (PEM files), for back ends
    /// that require client authentication.
    pub client_cert: Option<ClientCert>,
}

/// A client certificate: chain and key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ClientCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl HttpSpec {
    /// GET `path`, expecting 2xx.
    pub fn get(path: impl Into<String>) -> Self {
        HttpSpec {
            method: HttpMethod::Get,
            path: path.into(),
            host: None,
            expect_status: Vec::new(),
            body_contains: None,
            body_md5: None,
            body_regex: None,
            tls: None,
        }
    }

    /// Whether `status` is accepted.
    pub fn status_ok(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..=299).contains(&status)
        } else {
            self.expect_status.iter().any(|r| r.contains(&status))
        }
    }
}

/// A compiled regular expression over the response body (bytes, so a
/// body that is not UTF-8 can still match). Equal and hashed by its
/// pattern, so specs stay comparable.
#[derive(Debug, Clone)]
pub struct BodyRegex(regex::bytes::Regex);

/// As its pattern.
impl serde::Serialize for BodyRegex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

/// Serializes a secret as `"<redacted>"` (and `None` as null), so a
/// config shown as JSON never shows a password.
pub fn redacted<T, S: serde::Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some("<redacted>"),
        None => s.serialize_none(),
    }
}

impl BodyRegex {
    /// Compiles `pattern`; the error is the regex crate's message.
    pub fn new(pattern: &str) -> Result<Self, String> {
        regex::bytes::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map(BodyRegex)
            .map_err(|e| e.to_string())
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_match(&self, body: &[u8]) -> bool {
        self.0.is_match(body)
    }
}

impl PartialEq for BodyRegex {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for BodyRegex {}

impl std::hash::Hash for BodyRegex {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

/// A database check (mysql, pgsql). Without `username` only the server's
/// greeting is checked (no login). The password is never printed by
/// `Debug`.
#[derive(Clone, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct SqlSpec {
    pub username: Option<String>,
    #[serde(serialize_with = "redacted")]
    pub password: Option<String>,
    /// Database to open (mysql: in the login; pgsql: default the user name).
    pub database: Option<String>,
    /// A query that must succeed (ldirectord `request`), e.g. `SELECT 1`.
    pub query: Option<String>,
}

impl std::fmt::Debug for SqlSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSpec")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("query", &self.query)
            .finish()
    }
}

/// An external command check. It runs as ldirectord runs `external`
/// checks: `PROGRAM ARGS... VIP VPORT RIP RPORT` (the virtual service's
/// address and port, then the checked address and port), and with the
/// same values in `HALB_VIP`, `HALB_VPORT`, `HALB_RIP`, `HALB_RPORT`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ExternalSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The virtual service the real server serves; `None` for a
    /// firewall-mark service (then VIP and VPORT are not passed). Part of
    /// the check's identity: two services' checks of one real server are
    /// never merged into one run of the command.
    pub service: Option<std::net::SocketAddr>,
    /// Exit codes 2..=255 mean up with weight `code - 2`; without it they
    /// mean down.
    pub dynamic_weight: bool,
    /// Pass `VIP VPORT RIP RPORT` (ldirectord's order) after `args`, and
    /// in `HALB_*`; false runs the command as written (VRRP
    /// `track_script`).
    pub pass_addresses: bool,
}

/// A Redis check: `AUTH [username] password` first when a password is
/// set, then `PING`. The password is never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct RedisSpec {
    /// ACL user (Redis 6+); only with a password.
    pub username: Option<String>,
    #[serde(serialize_with = "redacted")]
    pub password: Option<String>,
}

impl std::fmt::Debug for RedisSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSpec")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The name an SMTP check announces when none is configured.
pub const DEFAULT_HELO_NAME: &str = "halb";

/// An SMTP check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct SmtpSpec {
    /// Sent with `EHLO`/`HELO`.
    pub helo_name: String,
    /// Submission: when the EHLO reply offers `STARTTLS`, upgrade with
    /// these TLS parameters and `EHLO` again, expecting 250.
    pub starttls: Option<TlsSpec>,
}

impl Default for SmtpSpec {
    fn default() -> Self {
        SmtpSpec {
            helo_name: DEFAULT_HELO_NAME.to_owned(),
            starttls: None,
        }
    }
}

impl SmtpSpec {
    /// ldirectord `submission`: SMTP with STARTTLS when offered, any
    /// certificate accepted.
    pub fn submission() -> Self {
        SmtpSpec {
            starttls: Some(TlsSpec::default()),
            ..SmtpSpec::default()
        }
    }
}

/// A `simpletcp` check: `send` written, the reply read (at most
/// [`SIMPLETCP_MAX_REPLY`] bytes, until the regex matches or the peer
/// closes) and matched against `expect`. Without `expect`, any reply
/// (even none, when the peer closes cleanly after the send) is up.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct SimpleTcpSpec {
    /// The bytes sent (may be empty: then only the reply is read).
    pub send: Vec<u8>,
    pub expect: Option<BodyRegex>,
    /// Over TLS when set.
    pub tls: Option<TlsSpec>,
}

/// Most bytes of a `simpletcp` reply that are read and matched.
pub const SIMPLETCP_MAX_REPLY: usize = 16 * 1024;

/// The FTP user ldirectord logs in as when none is set.
pub const DEFAULT_FTP_USER: &str = "anonymous";

/// ldirectord's anonymous FTP password: `ldirectord@<hostname>`.
pub fn default_ftp_password(hostname: &str) -> String {
    format!("ldirectord@{hostname}")
}

/// An FTP check. The password is never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct FtpSpec {
    /// Default [`DEFAULT_FTP_USER`].
    pub username: String,
    /// Default [`default_ftp_password`] of this host's name, resolved by
    /// the probe when `None`.
    #[serde(serialize_with = "redacted")]
    pub password: Option<String>,
    /// A file fetched with `RETR` (passive mode), ldirectord `request`.
    pub retrieve: Option<String>,
    /// With `retrieve`: the file's first [`SIMPLETCP_MAX_REPLY`] bytes
    /// must match (ldirectord `receive`).
    pub expect: Option<BodyRegex>,
}

impl Default for FtpSpec {
    fn default() -> Self {
        FtpSpec {
            username: DEFAULT_FTP_USER.to_owned(),
            password: None,
            retrieve: None,
            expect: None,
        }
    }
}

impl std::fmt::Debug for FtpSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpSpec")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("retrieve", &self.retrieve)
            .field("expect", &self.expect)
            .finish()
    }
}

/// An IMAP or POP3 check: the greeting, then a login when `username` is
/// set, then a clean `LOGOUT`/`QUIT`. The password is never printed.
#[derive(Clone, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct MailSpec {
    pub username: Option<String>,
    #[serde(serialize_with = "redacted")]
    pub password: Option<String>,
    /// imaps/pops: TLS from the first byte.
    pub tls: Option<TlsSpec>,
}

impl MailSpec {
    /// imaps/pops without a login, any certificate accepted.
    pub fn tls() -> Self {
        MailSpec {
            tls: Some(TlsSpec::default()),
            ..MailSpec::default()
        }
    }
}

impl std::fmt::Debug for MailSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSpec")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .finish()
    }
}

/// An LDAP check (ldirectord `ldap`, `ldaps`): a simple bind as
/// `bind_dn` with `password` (anonymous when `bind_dn` is `None`), then,
/// with `search_base`, a base-object search of that DN (filter
/// `(objectClass=*)`, no attributes asked) that must return exactly one
/// entry, whose DN must match `expect` when set (ldirectord's `receive`).
/// The password is never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct LdapSpec {
    pub bind_dn: Option<String>,
    #[serde(serialize_with = "redacted")]
    pub password: Option<String>,
    /// The DN searched with a base scope; `""` is the root DSE.
    pub search_base: Option<String>,
    pub expect: Option<BodyRegex>,
    /// ldaps: TLS from the first byte.
    pub tls: Option<TlsSpec>,
}

impl LdapSpec {
    /// ldirectord's ldap check without login or request: an anonymous
    /// bind and a search of the root DSE (`request` defaults to `/`).
    pub fn root_dse() -> Self {
        LdapSpec {
            search_base: Some(String::new()),
            ..LdapSpec::default()
        }
    }

    /// The same for ldaps, any certificate accepted.
    pub fn tls() -> Self {
        LdapSpec {
            tls: Some(TlsSpec::default()),
            ..LdapSpec::root_dse()
        }
    }
}

impl std::fmt::Debug for LdapSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapSpec")
            .field("bind_dn", &self.bind_dn)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("search_base", &self.search_base)
            .field("expect", &self.expect)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The User-Name a RADIUS check sends when none is configured.
pub const DEFAULT_RADIUS_USER: &str = "halb";

/// Longest RADIUS User-Password (RFC 2865 §5.2: 128 octets).
pub const RADIUS_MAX_PASSWORD: usize = 128;

/// A RADIUS check (ldirectord `radius`): an Access-Request with
/// User-Name, User-Password hidden with `secret`, NAS-IP-Address and a
/// Message-Authenticator. The secret and password are never printed by
/// `Debug`.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct RadiusSpec {
    /// Default [`DEFAULT_RADIUS_USER`].
    pub username: String,
    /// At most [`RADIUS_MAX_PASSWORD`] bytes; `None` sends an empty one.
    #[serde(serialize_with = "redacted")]
    pub password: Option<String>,
    /// The shared secret (non-empty).
    #[serde(serialize_with = "redacted_str")]
    pub secret: String,
    /// Only an Access-Accept is up; otherwise an Access-Reject is too
    /// (the server answered, as ldirectord reads it).
    pub require_accept: bool,
}

impl RadiusSpec {
    /// A check with `secret`, the default user, no password, Reject is up.
    pub fn new(secret: impl Into<String>) -> Self {
        RadiusSpec {
            username: DEFAULT_RADIUS_USER.to_owned(),
            password: None,
            secret: secret.into(),
            require_accept: false,
        }
    }
}

impl std::fmt::Debug for RadiusSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RadiusSpec")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("secret", &"<redacted>")
            .field("require_accept", &self.require_accept)
            .finish()
    }
}

/// Serializes a secret string as `"<redacted>"`.
pub fn redacted_str<S: serde::Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
}

/// The record types a DNS check can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub enum DnsType {
    A,
    Ns,
    #[default]
    Soa,
    Mx,
    Txt,
    Aaaa,
}

impl DnsType {
    /// Every type, for parsers.
    pub const ALL: [DnsType; 6] = [
        DnsType::A,
        DnsType::Aaaa,
        DnsType::Ns,
        DnsType::Soa,
        DnsType::Mx,
        DnsType::Txt,
    ];

    /// The QTYPE on the wire.
    pub fn code(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Ns => 2,
            DnsType::Soa => 6,
            DnsType::Mx => 15,
            DnsType::Txt => 16,
            DnsType::Aaaa => 28,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DnsType::A => "A",
            DnsType::Ns => "NS",
            DnsType::Soa => "SOA",
            DnsType::Mx => "MX",
            DnsType::Txt => "TXT",
            DnsType::Aaaa => "AAAA",
        }
    }
}

/// A DNS check: one query over UDP.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct DnsSpec {
    /// The name asked for; `"."` is the root.
    pub query_name: String,
    pub query_type: DnsType,
}

impl Default for DnsSpec {
    fn default() -> Self {
        DnsSpec {
            query_name: ".".to_owned(),
            query_type: DnsType::Soa,
        }
    }
}

/// A UDP check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct UdpSpec {
    /// The datagram sent (may be empty).
    pub payload: Vec<u8>,
    /// Up only when a datagram comes back; otherwise up unless ICMP port
    /// unreachable is reported.
    pub expect_reply: bool,
    /// With `expect_reply`: the reply must contain this.
    pub reply_contains: Option<Vec<u8>>,
}

/// The authority (`host[:port]`) of an absolute `http://` URL, the
/// target of an http_proxy check. `Err` says what is wrong: another
/// scheme (a proxy checked with `https://` would need CONNECT), no host,
/// spaces or control characters.
pub fn proxy_url_authority(url: &str) -> Result<&str, String> {
    let Some(rest) = url
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("http://"))
        .map(|_| &url[7..])
    else {
        return Err(format!("{url:?} is not an absolute http:// URL"));
    };
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("{url:?} has spaces or control characters"));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("{url:?} has no host (or has user info)"));
    }
    Ok(authority)
}

/// How a SIP check reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub enum SipTransport {
    /// One datagram, retransmitted as RFC 3261's timer A does.
    #[default]
    Udp,
    Tcp,
}

impl SipTransport {
    /// As in a Via header: `UDP`, `TCP`.
    pub fn as_str(self) -> &'static str {
        match self {
            SipTransport::Udp => "UDP",
            SipTransport::Tcp => "TCP",
        }
    }
}

/// A SIP check: `OPTIONS` to the server (ldirectord `sip`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct SipSpec {
    pub transport: SipTransport,
    /// The user of the Request-URI, To and From (ldirectord `login`):
    /// `user` (at the target) or `user@domain`. `None`: the Request-URI
    /// and To are the server itself (`sip:IP:PORT`), From `sip:halb@…`.
    pub username: Option<String>,
    /// Accepted final status codes; empty means any final response,
    /// `200..=699` (the server answered). ldirectord itself wants `200`.
    pub expect_status: Vec<RangeInclusive<u16>>,
}

impl SipSpec {
    /// Whether a final `status` is accepted.
    pub fn status_ok(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..=699).contains(&status)
        } else {
            self.expect_status.iter().any(|r| r.contains(&status))
        }
    }
}

/// The escapes of a `simpletcp` string (ldirectord writes `request =
/// "GET / HTTP/1.0\\r\\n\\r\\n"` with backslashes): `\\r`, `\\n`, `\\t`,
/// `\\0`, `\\\\` and `\\xHH`. TOML's own escapes have been applied
/// before, so a TOML "\\r\\n" is already CR LF and stays so. `Err` names
/// the first bad escape.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes().enumerate();
    while let Some((i, b)) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next().map(|(_, c)| c) {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'0') => out.push(0),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex = |c: Option<(usize, u8)>| c.and_then(|(_, c)| (c as char).to_digit(16));
                match (hex(bytes.next()), hex(bytes.next())) {
                    (Some(h), Some(l)) => out.push(u8::try_from(h * 16 + l).unwrap_or(0)),
                    _ => {
                        return Err(format!(
                            "bad \\x escape at byte {i}: two hex digits follow \\x"
                        ))
                    }
                }
            }
            Some(c) => {
                return Err(format!(
                    "unknown escape \\{} at byte {i} (\\r \\n \\t \\0 \\\\ \\xHH)",
                    char::from(c).escape_default()
                ))
            }
            None => return Err(format!("a lone backslash at the end (byte {i})")),
        }
    }
    Ok(out)
}

/// Timing parameters at one level (global, virtual service, real server);
/// `None` inherits from the level above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Params {
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub delay_before_retry: Option<Duration>,
    pub warmup: Option<Duration>,
    pub initial: Option<InitialState>,
}

/// Default interval (keepalived `delay_loop`, ldirectord `checkinterval`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Default probe timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `rise`.
pub const DEFAULT_RISE: u32 = 1;
/// Default `fall`.
pub const DEFAULT_FALL: u32 = 1;

/// Resolves real server over virtual service over global over the built-in
/// defaults. `delay_before_retry` defaults to the resolved interval (so
/// detection takes at most `fall × interval + timeout` when the timeout
/// is at most the interval); `rise` and `fall` are at least 1; zero
/// durations for `interval` are raised to 1 ms.
pub fn resolve(global: &Params, service: &Params, real: &Params) -> Timing {
    fn pick<T: Copy>(f: impl Fn(&Params) -> Option<T>, levels: [&Params; 3]) -> Option<T> {
        levels.iter().rev().find_map(|p| f(p))
    }
    let levels = [global, service, real];
    let interval = pick(|p| p.interval, levels)
        .unwrap_or(DEFAULT_INTERVAL)
        .max(Duration::from_millis(1));
    Timing {
        interval,
        timeout: pick(|p| p.timeout, levels).unwrap_or(DEFAULT_TIMEOUT),
        rise: pick(|p| p.rise, levels).unwrap_or(DEFAULT_RISE).max(1),
        fall: pick(|p| p.fall, levels).unwrap_or(DEFAULT_FALL).max(1),
        delay_before_retry: pick(|p| p.delay_before_retry, levels).unwrap_or(interval),
        warmup: pick(|p| p.warmup, levels).unwrap_or(Duration::ZERO),
        initial: pick(|p| p.initial, levels).unwrap_or_default(),
    }
}

impl Default for Timing {
    fn default() -> Self {
        resolve(&Params::default(), &Params::default(), &Params::default())
    }
}

/// The wire form of a name: `"."` or `""` is the root; a trailing dot is
/// optional. `Err` for an empty label, a label over 63 bytes, a name over
/// 255 bytes or a non-ASCII name.
pub fn encode_name(name: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(name.len() + 2);
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if !trimmed.is_empty() {
        if !trimmed.is_ascii() {
            return Err("a DNS name must be ASCII (use the xn-- form)".to_owned());
        }
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err("a DNS name has an empty label (\"..\")".to_owned());
            }
            let len = u8::try_from(label.len())
                .ok()
                .filter(|&l| l <= 63)
                .ok_or_else(|| format!("DNS label {label:?} is longer than 63 bytes"))?;
            out.push(len);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() > 255 {
        return Err("a DNS name is longer than 255 bytes".to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_defaults_the_next() {
        let global = Params {
            interval: Some(Duration::from_secs(2)),
            rise: Some(3),
            timeout: Some(Duration::from_secs(1)),
            ..Params::default()
        };
        let service = Params {
            rise: Some(2),
            fall: Some(4),
            ..Params::default()
        };
        let real = Params {
            fall: Some(5),
            warmup: Some(Duration::from_secs(7)),
            ..Params::default()
        };
        let t = resolve(&global, &service, &real);
        assert_eq!(t.interval, Duration::from_secs(2));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!(t.rise, 2);
        assert_eq!(t.fall, 5);
        assert_eq!(t.delay_before_retry, Duration::from_secs(2));
        assert_eq!(t.warmup, Duration::from_secs(7));
        assert_eq!(t.initial, InitialState::Down);
    }

    #[test]
    fn defaults_and_clamps() {
        let zero = Params {
            interval: Some(Duration::ZERO),
            rise: Some(0),
            fall: Some(0),
            ..Params::default()
        };
        let t = resolve(&Params::default(), &zero, &Params::default());
        assert_eq!(t.interval, Duration::from_millis(1));
        assert_eq!((t.rise, t.fall), (1, 1));
        assert_eq!(Timing::default().interval, DEFAULT_INTERVAL);
    }

    #[test]
    fn default_probe_by_port() {
        assert_eq!(
            ProbeSpec::default_for_port(80),
            ProbeSpec::Http(HttpSpec::get("/"))
        );
        assert!(matches!(
            ProbeSpec::default_for_port(443),
            ProbeSpec::Http(HttpSpec { tls: Some(_), .. })
        ));
        assert_eq!(
            ProbeSpec::default_for_port(3306),
            ProbeSpec::Mysql(SqlSpec::default())
        );
        assert_eq!(
            ProbeSpec::default_for_port(5432),
            ProbeSpec::Pgsql(SqlSpec::default())
        );
        assert_eq!(ProbeSpec::default_for_port(8080), ProbeSpec::Tcp);
        assert_eq!(
            ProbeSpec::default_for_port(6379),
            ProbeSpec::Redis(RedisSpec::default())
        );
        assert_eq!(
            ProbeSpec::default_for_port(25),
            ProbeSpec::Smtp(SmtpSpec::default())
        );
        assert_eq!(
            ProbeSpec::default_for_port(587),
            ProbeSpec::Smtp(SmtpSpec::submission())
        );
        assert_eq!(
            ProbeSpec::default_for_port(21),
            ProbeSpec::Ftp(FtpSpec::default())
        );
        assert_eq!(
            ProbeSpec::default_for_port(993),
            ProbeSpec::Imap(MailSpec::tls())
        );
        assert_eq!(
            ProbeSpec::default_for_port(110),
            ProbeSpec::Pop(MailSpec::default())
        );
        assert_eq!(ProbeSpec::default_for_port(119), ProbeSpec::Nntp);
        assert_eq!(
            ProbeSpec::default_for_port(5060),
            ProbeSpec::Sip(SipSpec::default())
        );
        assert_eq!(ProbeSpec::default_for_port(3128), ProbeSpec::Tcp);
        assert_eq!(
            proxy_url_authority("http://o.example:81/x"),
            Ok("o.example:81")
        );
        assert_eq!(proxy_url_authority("HTTP://o?q"), Ok("o"));
        assert!(proxy_url_authority("/x").is_err());
        assert!(proxy_url_authority("http:///x").is_err());
        assert!(proxy_url_authority("http://a b/").is_err());
        assert!(proxy_url_authority("http://u@o/").is_err());
        assert!(SipSpec::default().status_ok(404) && !SipSpec::default().status_ok(180));
        assert_eq!(
            ProbeSpec::default_for_port(53),
            ProbeSpec::Dns(DnsSpec::default())
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape("GET /\\r\\n\\r\\n").unwrap(), b"GET /\r\n\r\n");
        assert_eq!(unescape("a\\x41\\\\\\t\r").unwrap(), b"aA\\\t\r");
        assert!(unescape("x\\q").unwrap_err().contains("unknown escape"));
        assert!(unescape("x\\x4").is_err());
        assert!(unescape("x\\").unwrap_err().contains("lone"));
    }

    proptest::proptest! {
        #[test]
        fn unescape_never_panics(s in ".*") {
            let _ = unescape(&s);
        }

        #[test]
        fn plain_text_is_kept(s in "[^\\\\]*") {
            proptest::prop_assert_eq!(unescape(&s).unwrap(), s.as_bytes());
        }
    }

    #[test]
    fn redis_password_is_not_printed() {
        let r = RedisSpec {
            username: Some("u".into()),
            password: Some("s3cret".into()),
        };
        assert!(!format!("{r:?}").contains("s3cret"));
    }

    #[test]
    fn status_ranges() {
        let mut h = HttpSpec::get("/");
        assert!(h.status_ok(204) && !h.status_ok(301) && !h.status_ok(500));
        h.expect_status = vec![200..=200, 300..=399];
        assert!(h.status_ok(200) && h.status_ok(302) && !h.status_ok(204));
    }
}
