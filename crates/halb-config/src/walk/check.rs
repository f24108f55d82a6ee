//! `check` tables: health checks, settable in `[global]`, per virtual
//! service and per real server. Each table is checked on its own (types,
//! ranges, keys that contradict its `type`); then, per real server, the
//! three levels are merged key by key (the most specific wins) and the
//! timing resolved with [`halb_health::resolve`].

use super::{At, Cx, Field, Kind, Node, Section, Want};
use crate::diag::Problem;
use crate::values::quote;
use halb_health::{
    resolve, BodyRegex, CheckSpec, ClientCert, DnsSpec, DnsType, ExternalSpec, FtpSpec, HttpMethod,
    HttpSpec, InitialState, LdapSpec, MailSpec, Params, ProbeSpec, RadiusSpec, RedisSpec,
    SimpleTcpSpec, SipSpec, SipTransport, SmtpSpec, SqlSpec, TlsSpec, UdpSpec,
};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

pub(super) const CHECK_KEYS: &[&str] = &[
    "type",
    "interval",
    "timeout",
    "rise",
    "fall",
    "delay_before_retry",
    "warmup",
    "initial",
    "address",
    "port",
    "method",
    "path",
    "host",
    "expect_status",
    "body_contains",
    "body_md5",
    "body_regex",
    "sni",
    "verify",
    "ca_file",
    "client_cert",
    "client_key",
    "command",
    "dynamic_weight",
    "password",
    "username",
    "database",
    "query",
    "helo_name",
    "query_name",
    "query_type",
    "payload",
    "expect_reply",
    "reply_contains",
    "send",
    "expect_regex",
    "tls",
    "retrieve",
    "transport",
    "url",
    "bind_dn",
    "search_base",
    "secret",
    "require_accept",
];

/// Keys that an http, https or http_proxy check reads.
const HTTP_KEYS: &[&str] = &["method", "host", "body_contains", "body_md5", "body_regex"];
/// Keys that only an http or https check reads.
const PATH_KEYS: &[&str] = &["path"];
/// Accepted status codes: http, https, http_proxy, sip.
const STATUS_KEYS: &[&str] = &["expect_status"];
/// Keys that only an https check reads.
const TLS_KEYS: &[&str] = &["sni", "verify", "ca_file", "client_cert", "client_key"];
/// Keys that only an external check reads.
const EXTERNAL_KEYS: &[&str] = &["command", "dynamic_weight"];
/// The login's user: redis, mysql, pgsql, ftp, imap, pop and radius
/// checks read it, and sip (its URI's user).
const USER_KEYS: &[&str] = &["username"];
/// The password: the login checks but sip, and ldap.
const PASSWORD_KEYS: &[&str] = &["password"];
/// Keys that only a mysql or pgsql check reads.
const SQL_KEYS: &[&str] = &["database", "query"];
/// Keys that only an smtp check reads.
const SMTP_KEYS: &[&str] = &["helo_name"];
/// Keys that only a dns check reads.
const DNS_KEYS: &[&str] = &["query_name", "query_type"];
/// Keys that only a udp check reads.
const UDP_KEYS: &[&str] = &["payload", "expect_reply", "reply_contains"];
/// Keys that only a simpletcp check reads.
const SIMPLETCP_KEYS: &[&str] = &["send", "tls"];
/// The regular expression over a reply: simpletcp, ftp (the file).
const EXPECT_KEYS: &[&str] = &["expect_regex"];
/// Keys that only an ftp check reads.
const FTP_KEYS: &[&str] = &["retrieve"];
/// Keys that only an ldap or ldaps check reads.
const LDAP_KEYS: &[&str] = &["bind_dn", "search_base"];
/// Keys that only a radius check reads.
const RADIUS_KEYS: &[&str] = &["secret", "require_accept"];
/// Keys that only a sip check reads.
const SIP_KEYS: &[&str] = &["transport"];
/// Keys that only an http_proxy check reads.
const PROXY_KEYS: &[&str] = &["url"];

const TYPES: &[&str] = &[
    "tcp",
    "http",
    "https",
    "external",
    "redis",
    "smtp",
    "submission",
    "dns",
    "udp",
    "mysql",
    "pgsql",
    "icmp",
    "simpletcp",
    "ftp",
    "imap",
    "imaps",
    "pop",
    "pops",
    "nntp",
    "ldap",
    "ldaps",
    "radius",
    "oracle",
    "on",
    "off",
    "sip",
    "http_proxy",
];
const TYPE_SYNONYMS: &[(&str, &str)] = &[
    ("connect", "tcp"),
    ("tcp_check", "tcp"),
    ("http_get", "http"),
    ("ssl", "https"),
    ("ssl_get", "https"),
    ("tls", "https"),
    ("misc", "external"),
    ("misc_check", "external"),
    ("script", "external"),
    ("command", "external"),
    ("udp_check", "udp"),
    ("smtp_check", "smtp"),
    ("pop3", "pop"),
    ("pop3s", "pops"),
    ("domain", "dns"),
    ("ping", "icmp"),
    ("icmp_check", "icmp"),
    ("mariadb", "mysql"),
    ("sql", "mysql"),
    ("postgres", "pgsql"),
    ("postgresql", "pgsql"),
    ("pg", "pgsql"),
    ("forced_up", "on"),
    ("up", "on"),
    ("forced_down", "off"),
    ("down", "off"),
    ("disabled", "off"),
    ("sip_options", "sip"),
    ("proxy", "http_proxy"),
    ("httpproxy", "http_proxy"),
];
const TRANSPORTS: &[&str] = &["udp", "tcp"];
const TRANSPORT_SYNONYMS: &[(&str, &str)] = &[("UDP", "udp"), ("TCP", "tcp")];
const INITIAL: &[&str] = &["up", "down", "fully_up", "fully_down"];
const INITIAL_SYNONYMS: &[(&str, &str)] = &[("alpha", "fully_down")];
const METHODS: &[&str] = &["GET", "HEAD"];
const METHOD_SYNONYMS: &[(&str, &str)] = &[("get", "GET"), ("head", "HEAD")];
const QUERY_TYPES: &[&str] = &["A", "AAAA", "NS", "SOA", "MX", "TXT"];
const QUERY_TYPE_SYNONYMS: &[(&str, &str)] = &[
    ("a", "A"),
    ("aaaa", "AAAA"),
    ("ns", "NS"),
    ("soa", "SOA"),
    ("mx", "MX"),
    ("txt", "TXT"),
];

/// A fix for an unknown check key: what ldirectord or keepalived call it.
pub(super) fn check_key_hint(k: &str) -> Option<&'static str> {
    let pairs: &[(&[&str], &str)] = &[
        (
            &["checktype", "kind", "probe", "check_type"],
            "did you mean `type`?",
        ),
        (
            &["checkport", "connect_port", "check_port"],
            "did you mean `port`? (or `address` for another IP too)",
        ),
        (
            &["connect_ip", "checkaddress", "check_address", "target"],
            "did you mean `address`? address = \"192.0.2.10:8080\"",
        ),
        (
            &["request", "uri"],
            "did you mean `path`? (http; for mysql and pgsql it is `query`, for simpletcp `send`, for ftp `retrieve`, for ldap `search_base`, for http_proxy `url`)",
        ),
        (
            &["regex", "body_match", "receive_regex", "match"],
            "did you mean `body_regex`?",
        ),
        (
            &["db", "dbname", "database_name", "schema"],
            "did you mean `database`? (mysql, pgsql)",
        ),
        (
            &["sql", "statement"],
            "did you mean `query`? (mysql, pgsql)",
        ),
        (
            &["receive", "expect", "body", "contains"],
            "did you mean `body_contains`? (http; `expect_regex` for simpletcp, ftp and ldap)",
        ),
        (
            &["virtualhost", "vhost", "host_header"],
            "did you mean `host`?",
        ),
        (
            &["status", "status_code", "expect_code", "codes"],
            "did you mean `expect_status`?",
        ),
        (&["digest", "md5", "genhash"], "did you mean `body_md5`?"),
        (
            &["failurecount", "retry", "retries", "unhealthy_threshold"],
            "did you mean `fall`?",
        ),
        (
            &["healthy_threshold", "successcount"],
            "did you mean `rise`?",
        ),
        (
            &["checkinterval", "delay_loop", "every"],
            "did you mean `interval`?",
        ),
        (
            &["checktimeout", "connect_timeout", "negotiatetimeout"],
            "did you mean `timeout`?",
        ),
        (
            &["misc_path", "script", "cmd", "exec"],
            "did you mean `command`? command = [\"/usr/local/bin/check\", \"arg\"]",
        ),
        (
            &["misc_dynamic", "dynamic"],
            "did you mean `dynamic_weight`?",
        ),
        (
            &["alpha", "init_state", "initial_state"],
            "did you mean `initial`? initial = \"fully_down\" is keepalived's alpha",
        ),
        (
            &["server_name", "servername", "tls_server_name"],
            "did you mean `sni`?",
        ),
        (
            &["ssl_verify", "verify_peer", "tls_verify"],
            "did you mean `verify`?",
        ),
        (&["cert", "certificate"], "did you mean `client_cert`?"),
        (&["key"], "did you mean `client_key`?"),
        (
            &["requirepass", "passwd", "pass", "auth"],
            "did you mean `password`? (redis, mysql, pgsql, ftp, imap, pop, ldap, radius)",
        ),
        (
            &["user", "login", "acl_user"],
            "did you mean `username`? (redis, mysql, pgsql, ftp, imap, pop, radius; `bind_dn` for ldap)",
        ),
        (
            &["binddn", "bind", "dn", "bind_user"],
            "did you mean `bind_dn`? (ldap)",
        ),
        (
            &["base", "base_dn", "basedn", "search"],
            "did you mean `search_base`? (ldap)",
        ),
        (
            &["shared_secret", "radius_secret", "nas_secret"],
            "did you mean `secret`? (radius)",
        ),
        (
            &["accept", "require_access_accept", "accept_only"],
            "did you mean `require_accept`? (radius)",
        ),
        (
            &["helo", "ehlo", "ehlo_name"],
            "did you mean `helo_name`? (smtp)",
        ),
        (
            &["qname", "name_to_query", "domain"],
            "did you mean `query_name`? (dns)",
        ),
        (
            &["qtype", "record_type", "rrtype"],
            "did you mean `query_type`? (dns)",
        ),
        (
            &["data", "message"],
            "did you mean `payload`? (udp)",
        ),
        (
            &["require_reply", "reply", "wait_reply"],
            "did you mean `expect_reply`? (udp)",
        ),
        (
            &["reply_match", "recv"],
            "did you mean `reply_contains`? (udp)",
        ),
        (
            &["ca", "cafile", "ca_cert", "trust"],
            "did you mean `ca_file`?",
        ),
    ];
    crate::suggest::hint_for(pairs, k)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Tcp,
    Http,
    Https,
    External,
    Redis,
    Smtp,
    Dns,
    Udp,
    Mysql,
    Pgsql,
    Icmp,
    SimpleTcp,
    Ftp,
    Imap,
    Imaps,
    Pop,
    Pops,
    Nntp,
    Ldap,
    Ldaps,
    Radius,
    Submission,
    Oracle,
    On,
    Off,
    Sip,
    HttpProxy,
}

impl Type {
    fn label(self) -> &'static str {
        match self {
            Type::Tcp => "tcp",
            Type::Http => "http",
            Type::Https => "https",
            Type::External => "external",
            Type::Redis => "redis",
            Type::Smtp => "smtp",
            Type::Dns => "dns",
            Type::Udp => "udp",
            Type::Mysql => "mysql",
            Type::Pgsql => "pgsql",
            Type::Icmp => "icmp",
            Type::SimpleTcp => "simpletcp",
            Type::Ftp => "ftp",
            Type::Imap => "imap",
            Type::Imaps => "imaps",
            Type::Pop => "pop",
            Type::Pops => "pops",
            Type::Nntp => "nntp",
            Type::Ldap => "ldap",
            Type::Ldaps => "ldaps",
            Type::Radius => "radius",
            Type::Submission => "submission",
            Type::Oracle => "oracle",
            Type::On => "on",
            Type::Off => "off",
            Type::Sip => "sip",
            Type::HttpProxy => "http_proxy",
        }
    }
}

/// Each group of type-specific keys and the types that read it.
const KEY_GROUPS: &[(&[&str], &[Type])] = &[
    (HTTP_KEYS, &[Type::Http, Type::Https, Type::HttpProxy]),
    (PATH_KEYS, &[Type::Http, Type::Https]),
    (
        STATUS_KEYS,
        &[Type::Http, Type::Https, Type::HttpProxy, Type::Sip],
    ),
    (
        TLS_KEYS,
        &[
            Type::Https,
            Type::SimpleTcp,
            Type::Imaps,
            Type::Pops,
            Type::Submission,
            Type::Ldaps,
        ],
    ),
    (EXTERNAL_KEYS, &[Type::External]),
    (
        USER_KEYS,
        &[
            Type::Redis,
            Type::Mysql,
            Type::Pgsql,
            Type::Ftp,
            Type::Imap,
            Type::Imaps,
            Type::Pop,
            Type::Pops,
            Type::Radius,
            Type::Sip,
        ],
    ),
    (
        PASSWORD_KEYS,
        &[
            Type::Redis,
            Type::Mysql,
            Type::Pgsql,
            Type::Ftp,
            Type::Imap,
            Type::Imaps,
            Type::Pop,
            Type::Pops,
            Type::Ldap,
            Type::Ldaps,
            Type::Radius,
        ],
    ),
    (SQL_KEYS, &[Type::Mysql, Type::Pgsql]),
    (SMTP_KEYS, &[Type::Smtp, Type::Submission]),
    (DNS_KEYS, &[Type::Dns]),
    (UDP_KEYS, &[Type::Udp]),
    (SIMPLETCP_KEYS, &[Type::SimpleTcp]),
    (
        EXPECT_KEYS,
        &[Type::SimpleTcp, Type::Ftp, Type::Ldap, Type::Ldaps],
    ),
    (FTP_KEYS, &[Type::Ftp]),
    (SIP_KEYS, &[Type::Sip]),
    (PROXY_KEYS, &[Type::HttpProxy]),
    (LDAP_KEYS, &[Type::Ldap, Type::Ldaps]),
    (RADIUS_KEYS, &[Type::Radius]),
];

/// `type = "http" or "https"`.
fn wants(types: &[Type]) -> String {
    let names: Vec<String> = types.iter().map(|t| format!("\"{}\"", t.label())).collect();
    match names.split_last() {
        Some((last, [])) => format!("type = {last}"),
        Some((last, rest)) => format!("type = {} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Addr(SocketAddr),
    Port(u16),
}

/// One `check` table as written; `None` keys inherit from the level above.
#[derive(Debug, Clone, Default)]
pub(super) struct Layer {
    /// Whether the table exists at this level (even empty: it turns
    /// checking on for every real server below).
    present: bool,
    params: Params,
    kind: Option<At<Type>>,
    /// A `type` key is written (even if invalid, so no follow-up error).
    type_written: bool,
    target: Option<Target>,
    method: Option<At<HttpMethod>>,
    path: Option<String>,
    host: Option<String>,
    expect_status: Option<Vec<RangeInclusive<u16>>>,
    body_contains: Option<String>,
    body_md5: Option<[u8; 16]>,
    body_regex: Option<BodyRegex>,
    sni: Option<String>,
    verify: Option<bool>,
    ca_file: Option<PathBuf>,
    client_cert: Option<At<PathBuf>>,
    client_key: Option<At<PathBuf>>,
    command: Option<(PathBuf, Vec<String>)>,
    dynamic_weight: Option<bool>,
    password: Option<At<String>>,
    username: Option<At<String>>,
    database: Option<At<String>>,
    query: Option<At<String>>,
    helo_name: Option<String>,
    query_name: Option<String>,
    query_type: Option<DnsType>,
    payload: Option<Vec<u8>>,
    expect_reply: Option<bool>,
    reply_contains: Option<Vec<u8>>,
    send: Option<Vec<u8>>,
    expect_regex: Option<BodyRegex>,
    tls: Option<bool>,
    retrieve: Option<String>,
    transport: Option<SipTransport>,
    url: Option<String>,
    /// A `url` key is written (even if invalid, so no follow-up error).
    url_written: bool,
    bind_dn: Option<At<String>>,
    search_base: Option<String>,
    secret: Option<String>,
    /// A `secret` key is written (even if invalid, so no follow-up error).
    secret_written: bool,
    require_accept: Option<bool>,
    /// Where the most specific check table is (for an error about a
    /// check whose type comes from the port).
    table: Option<At<()>>,
}

impl Layer {
    /// `self` over `lower`, key by key.
    fn over(&self, lower: &Layer) -> Layer {
        Layer {
            present: self.present || lower.present,
            params: Params::default(),
            kind: self.kind.clone().or_else(|| lower.kind.clone()),
            type_written: self.type_written || lower.type_written,
            target: self.target.or(lower.target),
            method: self.method.clone().or_else(|| lower.method.clone()),
            path: self.path.clone().or_else(|| lower.path.clone()),
            host: self.host.clone().or_else(|| lower.host.clone()),
            expect_status: self
                .expect_status
                .clone()
                .or_else(|| lower.expect_status.clone()),
            body_contains: self
                .body_contains
                .clone()
                .or_else(|| lower.body_contains.clone()),
            body_md5: self.body_md5.or(lower.body_md5),
            body_regex: self.body_regex.clone().or_else(|| lower.body_regex.clone()),
            sni: self.sni.clone().or_else(|| lower.sni.clone()),
            verify: self.verify.or(lower.verify),
            ca_file: self.ca_file.clone().or_else(|| lower.ca_file.clone()),
            client_cert: self
                .client_cert
                .clone()
                .or_else(|| lower.client_cert.clone()),
            client_key: self.client_key.clone().or_else(|| lower.client_key.clone()),
            command: self.command.clone().or_else(|| lower.command.clone()),
            dynamic_weight: self.dynamic_weight.or(lower.dynamic_weight),
            password: self.password.clone().or_else(|| lower.password.clone()),
            username: self.username.clone().or_else(|| lower.username.clone()),
            database: self.database.clone().or_else(|| lower.database.clone()),
            query: self.query.clone().or_else(|| lower.query.clone()),
            helo_name: self.helo_name.clone().or_else(|| lower.helo_name.clone()),
            query_name: self.query_name.clone().or_else(|| lower.query_name.clone()),
            query_type: self.query_type.or(lower.query_type),
            payload: self.payload.clone().or_else(|| lower.payload.clone()),
            expect_reply: self.expect_reply.or(lower.expect_reply),
            reply_contains: self
                .reply_contains
                .clone()
                .or_else(|| lower.reply_contains.clone()),
            send: self.send.clone().or_else(|| lower.send.clone()),
            expect_regex: self
                .expect_regex
                .clone()
                .or_else(|| lower.expect_regex.clone()),
            tls: self.tls.or(lower.tls),
            retrieve: self.retrieve.clone().or_else(|| lower.retrieve.clone()),
            transport: self.transport.or(lower.transport),
            url: self.url.clone().or_else(|| lower.url.clone()),
            url_written: self.url_written || lower.url_written,
            bind_dn: self.bind_dn.clone().or_else(|| lower.bind_dn.clone()),
            search_base: self
                .search_base
                .clone()
                .or_else(|| lower.search_base.clone()),
            secret: self.secret.clone().or_else(|| lower.secret.clone()),
            secret_written: self.secret_written || lower.secret_written,
            require_accept: self.require_accept.or(lower.require_accept),
            table: self.table.clone().or_else(|| lower.table.clone()),
        }
    }

    /// The probe type the keys imply, for a check without `type` whose
    /// port picks no protocol probe.
    fn implied_type(&self) -> Option<Type> {
        if self.database.is_some() || self.query.is_some() {
            // mysql or pgsql: the type must say which.
            None
        } else if self.url.is_some() {
            Some(Type::HttpProxy)
        } else if self.transport.is_some() {
            Some(Type::Sip)
        } else if self.retrieve.is_some() {
            Some(Type::Ftp)
        } else if self.bind_dn.is_some() || self.search_base.is_some() {
            Some(Type::Ldap)
        } else if self.secret.is_some() || self.require_accept.is_some() {
            Some(Type::Radius)
        } else if self.send.is_some() || self.expect_regex.is_some() || self.tls.is_some() {
            Some(Type::SimpleTcp)
        } else if self.password.is_some() || self.username.is_some() {
            Some(Type::Redis)
        } else if self.helo_name.is_some() {
            Some(Type::Smtp)
        } else if self.query_name.is_some() || self.query_type.is_some() {
            Some(Type::Dns)
        } else if self.payload.is_some()
            || self.expect_reply.is_some()
            || self.reply_contains.is_some()
        {
            Some(Type::Udp)
        } else {
            None
        }
    }

    fn has_http_keys(&self) -> bool {
        self.method.is_some()
            || self.path.is_some()
            || self.host.is_some()
            || self.expect_status.is_some()
            || self.body_contains.is_some()
            || self.body_md5.is_some()
            || self.body_regex.is_some()
    }

    /// The TLS parameters of a check with TLS other than https (there,
    /// client certificates are checked too).
    fn tls_spec(&self) -> TlsSpec {
        TlsSpec {
            server_name: self.sni.clone(),
            verify: self.verify.unwrap_or(false),
            ca_file: self.ca_file.clone(),
            client_cert: match (&self.client_cert, &self.client_key) {
                (Some(c), Some(k)) => Some(ClientCert {
                    cert_file: c.v.clone(),
                    key_file: k.v.clone(),
                }),
                _ => None,
            },
        }
    }

    fn has_tls_keys(&self) -> bool {
        self.sni.is_some()
            || self.verify.is_some()
            || self.ca_file.is_some()
            || self.client_cert.is_some()
            || self.client_key.is_some()
    }
}

impl Cx<'_> {
    /// A `check` table (standard or inline) at one level.
    pub(super) fn check_table(&mut self, f: &Field) -> Layer {
        let w = Want {
            short: "a table",
            expected: "a check table: check = { type = \"tcp\" } or a [… .check] table",
            example: "",
        };
        let fix = "write check = { type = \"http\", path = \"/health\" }".to_owned();
        let Some(node) = self.table(f, &w, Some(fix)) else {
            return Layer::default();
        };
        self.check_keys(&node, Section::Check);
        let mut l = Layer {
            present: true,
            table: Some(At {
                v: (),
                span: f.key_span.clone(),
                path: f.path.clone(),
            }),
            ..Layer::default()
        };

        if let Some(t) = self.field(&node, "type") {
            l.type_written = true;
            let kind = match self.choice(&t, "check type", TYPES, TYPE_SYNONYMS) {
                Some("tcp") => Some(Type::Tcp),
                Some("http") => Some(Type::Http),
                Some("https") => Some(Type::Https),
                Some("external") => Some(Type::External),
                Some("redis") => Some(Type::Redis),
                Some("smtp") => Some(Type::Smtp),
                Some("dns") => Some(Type::Dns),
                Some("udp") => Some(Type::Udp),
                Some("mysql") => Some(Type::Mysql),
                Some("pgsql") => Some(Type::Pgsql),
                Some("icmp") => Some(Type::Icmp),
                Some("simpletcp") => Some(Type::SimpleTcp),
                Some("ftp") => Some(Type::Ftp),
                Some("imap") => Some(Type::Imap),
                Some("imaps") => Some(Type::Imaps),
                Some("pop") => Some(Type::Pop),
                Some("pops") => Some(Type::Pops),
                Some("nntp") => Some(Type::Nntp),
                Some("ldap") => Some(Type::Ldap),
                Some("ldaps") => Some(Type::Ldaps),
                Some("radius") => Some(Type::Radius),
                Some("submission") => Some(Type::Submission),
                Some("oracle") => {
                    self.push(
                        Problem::new(
                            t.span.clone(),
                            t.path.clone(),
                            "oracle checks are not supported: they need Oracle's client library",
                        )
                        .expected("a check type halb runs itself (Oracle's TNS login is only in Oracle's proprietary client)")
                        .fix("use type = \"tcp\" for the listener, or type = \"external\" with command = [\"/usr/local/bin/check-oracle\"] (e.g. a sqlplus script)"),
                    );
                    Some(Type::Oracle)
                }
                Some("on") => Some(Type::On),
                Some("off") => Some(Type::Off),
                Some("sip") => Some(Type::Sip),
                Some("http_proxy") => Some(Type::HttpProxy),
                _ => None,
            };
            l.kind = kind.map(|v| At {
                v,
                span: t.span.clone(),
                path: t.path.clone(),
            });
        }

        // Timing.
        let dur = |cx: &mut Self, key: &str, min: Duration, fix: &str| -> Option<Duration> {
            let f = cx.field(&node, key)?;
            cx.duration(&f, min, fix)
        };
        l.params.interval = dur(
            self,
            "interval",
            Duration::from_millis(10),
            "use at least \"10ms\"; \"1s\" to \"10s\" is usual",
        );
        l.params.timeout = dur(
            self,
            "timeout",
            Duration::from_millis(1),
            "a probe needs time: use e.g. \"1s\"",
        );
        l.params.delay_before_retry = dur(
            self,
            "delay_before_retry",
            Duration::from_millis(10),
            "use at least \"10ms\", or remove it to retry at the interval",
        );
        l.params.warmup = dur(self, "warmup", Duration::ZERO, "");
        let count = |cx: &mut Self, key: &str, what: &str| -> Option<u32> {
            let f = cx.field(&node, key)?;
            let expected = format!("an integer 1..1000 (default 1): {what}");
            let w = Want {
                short: "an integer",
                expected: &expected,
                example: "2",
            };
            let v = cx.int_range(&f, &w, (1, 1000), "use a count from 1 to 1000")?;
            u32::try_from(v).ok()
        };
        l.params.rise = count(
            self,
            "rise",
            "consecutive successes that bring a real server up",
        );
        l.params.fall = count(
            self,
            "fall",
            "consecutive failures that take a real server down",
        );
        if let Some(f) = self.field(&node, "initial") {
            l.params.initial = match self.choice(&f, "initial state", INITIAL, INITIAL_SYNONYMS) {
                Some("up") => Some(InitialState::Up),
                Some("down") => Some(InitialState::Down),
                Some("fully_up") => Some(InitialState::FullyUp),
                Some("fully_down") => Some(InitialState::FullyDown),
                _ => None,
            };
        }

        // Target.
        let address = self.field(&node, "address");
        let port = self.field(&node, "port");
        if let Some(f) = &address {
            l.target = self.addr(f, "\"192.0.2.10:8080\"").map(Target::Addr);
        }
        if let Some(f) = &port {
            let w = Want {
                short: "an integer",
                expected: "a port 1..65535 (the real server's IP address, this port)",
                example: "8080",
            };
            if let Some(p) = self.int_range(f, &w, (1, 65535), "ports range 1..65535") {
                if let Some(a) = &address {
                    self.push(
                        Problem::new(f.span.clone(), f.path.clone(), "both `address` and `port` are set")
                            .expected("either address = \"IP:PORT\" (another host) or port = N (the real server's IP address)")
                            .fix(format!("remove `port`: the address at line {} has the port already", self.line(&a.span))),
                    );
                } else {
                    l.target = u16::try_from(p).ok().map(Target::Port);
                }
            }
        }

        // HTTP.
        if let Some(f) = self.field(&node, "method") {
            let method = match self.choice(&f, "HTTP method", METHODS, METHOD_SYNONYMS) {
                Some("GET") => Some(HttpMethod::Get),
                Some("HEAD") => Some(HttpMethod::Head),
                _ => None,
            };
            l.method = method.map(|v| At {
                v,
                span: f.span.clone(),
                path: f.path.clone(),
            });
        }
        if let Some(f) = self.field(&node, "path") {
            l.path = self.http_path(&f);
        }
        if let Some(f) = self.field(&node, "host") {
            l.host = self.token(
                &f,
                "a host name, optionally with :port",
                "\"www.example.com\"",
            );
        }
        if let Some(f) = self.field(&node, "expect_status") {
            l.expect_status = self.statuses(&f);
        }
        if let Some(f) = self.field(&node, "body_contains") {
            let w = Want {
                short: "a string",
                expected: "a non-empty string the response body must contain",
                example: "\"OK\"",
            };
            if let Some(s) = self.string(&f, &w) {
                if s.is_empty() {
                    self.push(
                        Problem::new(f.span.clone(), f.path.clone(), "body_contains is empty")
                            .expected(w.expected)
                            .fix("give the text to look for, or remove body_contains"),
                    );
                } else {
                    l.body_contains = Some(s.to_owned());
                }
            }
        }
        if let Some(f) = self.field(&node, "body_md5") {
            l.body_md5 = self.md5(&f);
        }
        if let Some(f) = self.field(&node, "body_regex") {
            l.body_regex = self.regex(&f);
        }

        // TLS.
        if let Some(f) = self.field(&node, "sni") {
            l.sni = self.token(&f, "a server name", "\"www.example.com\"");
        }
        if let Some(f) = self.field(&node, "verify") {
            l.verify = self.boolean(
                &f,
                "true or false (default false: any certificate is accepted)",
            );
        }
        if let Some(f) = self.field(&node, "ca_file") {
            l.ca_file = self.file_path(&f, "\"/etc/ssl/certs/my-ca.pem\"");
        }
        for (key, slot) in [
            ("client_cert", &mut l.client_cert),
            ("client_key", &mut l.client_key),
        ] {
            if let Some(f) = self.field(&node, key) {
                *slot = self.file_path(&f, "\"/etc/halb/client.pem\"").map(|v| At {
                    v,
                    span: f.span.clone(),
                    path: f.path.clone(),
                });
            }
        }

        // External.
        if let Some(f) = self.field(&node, "command") {
            l.command = self.command(&f);
        }
        if let Some(f) = self.field(&node, "dynamic_weight") {
            l.dynamic_weight = self.boolean(&f, "true or false (default false)");
        }

        self.protocol_keys(&node, &mut l);
        self.stream_keys(&node, &mut l);
        self.directory_keys(&node, &mut l);

        // Keys that contradict this table's own type.
        if let Some(kind) = &l.kind {
            let label = kind.v.label();
            for (group, types) in KEY_GROUPS {
                if types.contains(&kind.v) {
                    continue;
                }
                for key in *group {
                    let Some(f) = self.field(&node, key) else {
                        continue;
                    };
                    self.push(
                        Problem::new(
                            f.key_span.clone(),
                            f.path.clone(),
                            format!("`{key}` does not apply to a {label} check"),
                        )
                        .expected(format!("`{key}` only with {}", wants(types)))
                        .fix(format!(
                            "remove `{key}`, or change type = \"{label}\" (line {})",
                            self.line(&kind.span)
                        )),
                    );
                }
            }
        }
        l
    }

    /// The check of one real server, from the three levels; `None` when
    /// no level has a `check` table.
    pub(super) fn resolve_check(
        &mut self,
        global: &Layer,
        service: &Layer,
        real: &Layer,
        addr: SocketAddr,
        listen: Option<SocketAddr>,
    ) -> Option<CheckSpec> {
        let service_port = listen.map_or(0, |l| l.port());
        if !(global.present || service.present || real.present) {
            return None;
        }
        let m = real.over(&service.over(global));
        let default = match ProbeSpec::default_for_port(service_port) {
            ProbeSpec::Tcp => ProbeSpec::default_for_port(addr.port()),
            by_service => by_service,
        };
        let kind = match &m.kind {
            Some(k) => k.v,
            None if m.command.is_some() => Type::External,
            // The URL fetched through the real server says http_proxy.
            None if m.url.is_some() => Type::HttpProxy,
            // HTTP or TLS keys the operator wrote say more than a port.
            None if m.has_tls_keys()
                && m.implied_type() != Some(Type::SimpleTcp)
                && !matches!(&default, ProbeSpec::Http(h) if h.tls.is_some())
                && !matches!(
                    &default,
                    ProbeSpec::Smtp(SmtpSpec {
                        starttls: Some(_),
                        ..
                    }) | ProbeSpec::Imap(MailSpec { tls: Some(_), .. })
                        | ProbeSpec::Pop(MailSpec { tls: Some(_), .. })
                        | ProbeSpec::Ldap(LdapSpec { tls: Some(_), .. })
                ) =>
            {
                Type::Https
            }
            None if m.has_http_keys() && !matches!(default, ProbeSpec::Http(_)) => Type::Http,
            None => match &default {
                ProbeSpec::Http(h) if h.tls.is_some() => Type::Https,
                ProbeSpec::Http(_) => Type::Http,
                ProbeSpec::Redis(_) => Type::Redis,
                ProbeSpec::Smtp(s) if s.starttls.is_some() => Type::Submission,
                ProbeSpec::Smtp(_) => Type::Smtp,
                ProbeSpec::Ftp(_) => Type::Ftp,
                ProbeSpec::Imap(m) if m.tls.is_some() => Type::Imaps,
                ProbeSpec::Imap(_) => Type::Imap,
                ProbeSpec::Pop(m) if m.tls.is_some() => Type::Pops,
                ProbeSpec::Pop(_) => Type::Pop,
                ProbeSpec::Nntp => Type::Nntp,
                ProbeSpec::Ldap(l) if l.tls.is_some() => Type::Ldaps,
                ProbeSpec::Ldap(_) => Type::Ldap,
                ProbeSpec::Radius(_) => Type::Radius,
                ProbeSpec::Sip(_) => Type::Sip,
                ProbeSpec::Dns(_) => Type::Dns,
                ProbeSpec::Mysql(_) => Type::Mysql,
                ProbeSpec::Pgsql(_) => Type::Pgsql,
                _ => m.implied_type().unwrap_or(Type::Tcp),
            },
        };
        let target = match m.target {
            Some(Target::Addr(a)) => a,
            Some(Target::Port(p)) => SocketAddr::new(addr.ip(), p),
            None => addr,
        };
        let mut ok = true;
        let probe = match kind {
            Type::Tcp => ProbeSpec::Tcp,
            Type::Icmp => ProbeSpec::Icmp,
            Type::On => ProbeSpec::On,
            Type::Off => ProbeSpec::Off,
            Type::Redis => {
                if let (Some(u), None) = (&m.username, &m.password) {
                    self.push_once(
                        Problem::new(u.span.clone(), u.path.clone(), "`username` without `password`")
                            .expected("username and password together (AUTH username password), at this level or above")
                            .fix("add password = \"…\" next to it (or to the check table of the service or of [global]), or remove username"),
                    );
                    ok = false;
                }
                ProbeSpec::Redis(RedisSpec {
                    username: m.username.as_ref().map(|u| u.v.clone()),
                    password: m.password.as_ref().map(|p| p.v.clone()),
                })
            }
            Type::Mysql | Type::Pgsql => {
                let needs_user = [
                    ("password", &m.password),
                    ("database", &m.database),
                    ("query", &m.query),
                ];
                if m.username.is_none() {
                    for (key, v) in needs_user {
                        if let Some(v) = v {
                            self.push_once(
                                Problem::new(v.span.clone(), v.path.clone(), format!("`{key}` without `username`"))
                                    .expected("a mysql or pgsql check logs in only with username = \"…\"; without it only the server's greeting is checked")
                                    .fix(format!("add username = \"…\" next to it (or to the check table of the service or of [global]), or remove {key}")),
                            );
                            ok = false;
                        }
                    }
                }
                let spec = SqlSpec {
                    username: m.username.as_ref().map(|u| u.v.clone()),
                    password: m.password.as_ref().map(|p| p.v.clone()),
                    database: m.database.as_ref().map(|d| d.v.clone()),
                    query: m.query.as_ref().map(|q| q.v.clone()),
                };
                if kind == Type::Mysql {
                    ProbeSpec::Mysql(spec)
                } else {
                    ProbeSpec::Pgsql(spec)
                }
            }
            Type::Smtp | Type::Submission => ProbeSpec::Smtp(SmtpSpec {
                helo_name: m
                    .helo_name
                    .clone()
                    .unwrap_or_else(|| halb_health::spec::DEFAULT_HELO_NAME.to_owned()),
                starttls: (kind == Type::Submission).then(|| m.tls_spec()),
            }),
            Type::Oracle => {
                // Reported at the `type` key.
                ok = false;
                ProbeSpec::Oracle
            }
            Type::SimpleTcp => ProbeSpec::SimpleTcp(SimpleTcpSpec {
                send: m.send.clone().unwrap_or_default(),
                expect: m.expect_regex.clone(),
                tls: (m.tls == Some(true) || (m.tls.is_none() && m.has_tls_keys()))
                    .then(|| m.tls_spec()),
            }),
            Type::Ftp => ProbeSpec::Ftp(FtpSpec {
                username: m.username.as_ref().map_or_else(
                    || halb_health::spec::DEFAULT_FTP_USER.to_owned(),
                    |u| u.v.clone(),
                ),
                password: m.password.as_ref().map(|p| p.v.clone()),
                retrieve: m.retrieve.clone(),
                expect: m.expect_regex.clone(),
            }),
            Type::Imap | Type::Imaps | Type::Pop | Type::Pops => {
                if let Some((has, lacks, at)) = match (&m.username, &m.password) {
                    (Some(u), None) => Some(("username", "password", u)),
                    (None, Some(p)) => Some(("password", "username", p)),
                    _ => None,
                } {
                    self.push_once(
                        Problem::new(at.span.clone(), at.path.clone(), format!("`{has}` without `{lacks}`"))
                            .expected(format!("username and password together ({} login), at this level or above", kind.label()))
                            .fix(format!("add {lacks} = \"…\" next to it (or to the check table of the service or of [global]), or remove {has}")),
                    );
                    ok = false;
                }
                let spec = MailSpec {
                    username: m.username.as_ref().map(|u| u.v.clone()),
                    password: m.password.as_ref().map(|p| p.v.clone()),
                    tls: matches!(kind, Type::Imaps | Type::Pops).then(|| m.tls_spec()),
                };
                if matches!(kind, Type::Imap | Type::Imaps) {
                    ProbeSpec::Imap(spec)
                } else {
                    ProbeSpec::Pop(spec)
                }
            }
            Type::Nntp => ProbeSpec::Nntp,
            Type::Sip => ProbeSpec::Sip(SipSpec {
                transport: m.transport.unwrap_or_default(),
                username: m.username.as_ref().map(|u| u.v.clone()),
                expect_status: m.expect_status.clone().unwrap_or_default(),
            }),
            Type::HttpProxy => match &m.url {
                Some(url) => ProbeSpec::HttpProxy(HttpSpec {
                    method: m.method.as_ref().map(|x| x.v).unwrap_or_default(),
                    path: url.clone(),
                    host: m.host.clone(),
                    expect_status: m.expect_status.clone().unwrap_or_default(),
                    body_contains: m.body_contains.clone(),
                    body_md5: m.body_md5,
                    body_regex: m.body_regex.clone(),
                    tls: None,
                }),
                None => {
                    if let Some(k) = m.kind.as_ref().filter(|_| !m.url_written) {
                        self.push_once(
                            Problem::new(
                                k.span.clone(),
                                k.path.clone(),
                                "an http_proxy check without a `url`",
                            )
                            .expected("url = \"http://ORIGIN/PATH\": the absolute URL fetched through the real server (ldirectord's request)")
                            .fix("add url = \"http://www.example.com/\" to this check table (or to a check table of the service or of [global])"),
                        );
                    }
                    ok = false;
                    ProbeSpec::Tcp
                }
            },
            Type::Ldap | Type::Ldaps => {
                if let Some((has, lacks, at)) = match (&m.bind_dn, &m.password) {
                    (Some(u), None) => Some(("bind_dn", "password", u)),
                    (None, Some(p)) => Some(("password", "bind_dn", p)),
                    _ => None,
                } {
                    self.push_once(
                        Problem::new(at.span.clone(), at.path.clone(), format!("`{has}` without `{lacks}`"))
                            .expected("bind_dn and password together (a simple bind, ldirectord's login and passwd); without both the bind is anonymous")
                            .fix(format!("add {lacks} = \"…\" next to it (or to the check table of the service or of [global]), or remove {has}")),
                    );
                    ok = false;
                }
                ProbeSpec::Ldap(LdapSpec {
                    bind_dn: m.bind_dn.as_ref().map(|d| d.v.clone()),
                    password: m.password.as_ref().map(|p| p.v.clone()),
                    // ldirectord searches its request, "/" (the root DSE)
                    // by default.
                    search_base: Some(m.search_base.clone().unwrap_or_default()),
                    expect: m.expect_regex.clone(),
                    tls: (kind == Type::Ldaps).then(|| m.tls_spec()),
                })
            }
            Type::Radius => {
                if let Some(p) = m
                    .password
                    .as_ref()
                    .filter(|p| p.v.len() > halb_health::spec::RADIUS_MAX_PASSWORD)
                {
                    self.push_once(
                        Problem::new(
                            p.span.clone(),
                            p.path.clone(),
                            format!("a radius password of {} bytes", p.v.len()),
                        )
                        .expected(format!(
                            "at most {} bytes (RFC 2865 User-Password)",
                            halb_health::spec::RADIUS_MAX_PASSWORD
                        ))
                        .fix("use a shorter password for the health-check user"),
                    );
                    ok = false;
                }
                let secret = match &m.secret {
                    Some(s) => s.clone(),
                    None if m.secret_written => {
                        ok = false;
                        String::new()
                    }
                    None => {
                        if let Some(at) = m
                            .kind
                            .as_ref()
                            .map(|k| (k.span.clone(), k.path.clone()))
                            .or_else(|| m.table.as_ref().map(|t| (t.span.clone(), t.path.clone())))
                        {
                            let why = if m.kind.is_some() {
                                "a radius check without a `secret`"
                            } else {
                                "a radius check (port 1812) without a `secret`"
                            };
                            self.push_once(
                                Problem::new(at.0, at.1, why)
                                    .expected("secret = \"…\": the shared secret of this client in the RADIUS server's clients.conf")
                                    .fix("add secret = \"…\" to this check table (or to a check table of the service or of [global]), or type = \"udp\" for a bare datagram"),
                            );
                        }
                        ok = false;
                        String::new()
                    }
                };
                ProbeSpec::Radius(RadiusSpec {
                    username: m.username.as_ref().map_or_else(
                        || halb_health::spec::DEFAULT_RADIUS_USER.to_owned(),
                        |u| u.v.clone(),
                    ),
                    password: m.password.as_ref().map(|p| p.v.clone()),
                    secret,
                    require_accept: m.require_accept.unwrap_or(false),
                })
            }
            Type::Dns => ProbeSpec::Dns(DnsSpec {
                query_name: m.query_name.clone().unwrap_or_else(|| ".".to_owned()),
                query_type: m.query_type.unwrap_or_default(),
            }),
            Type::Udp => {
                let expect_reply = m.expect_reply.unwrap_or(m.reply_contains.is_some());
                ProbeSpec::Udp(UdpSpec {
                    payload: m.payload.clone().unwrap_or_default(),
                    expect_reply,
                    reply_contains: m.reply_contains.clone().filter(|_| expect_reply),
                })
            }
            Type::Http | Type::Https => {
                let tls = if kind == Type::Https {
                    let client_cert = match (&m.client_cert, &m.client_key) {
                        (Some(c), Some(k)) => Some(ClientCert {
                            cert_file: c.v.clone(),
                            key_file: k.v.clone(),
                        }),
                        (None, None) => None,
                        (Some(one), None) | (None, Some(one)) => {
                            let (has, lacks) = if m.client_cert.is_some() {
                                ("client_cert", "client_key")
                            } else {
                                ("client_key", "client_cert")
                            };
                            self.push_once(
                                Problem::new(
                                    one.span.clone(),
                                    one.path.clone(),
                                    format!("`{has}` without `{lacks}`"),
                                )
                                .expected("client_cert and client_key together (PEM files)")
                                .fix(format!("add {lacks} = \"…\" next to it, or remove {has}")),
                            );
                            ok = false;
                            None
                        }
                    };
                    Some(TlsSpec {
                        server_name: m.sni.clone(),
                        verify: m.verify.unwrap_or(false),
                        ca_file: m.ca_file.clone(),
                        client_cert,
                    })
                } else {
                    None
                };
                if let Some(head) = m.method.as_ref().filter(|x| x.v == HttpMethod::Head) {
                    if m.body_contains.is_some() || m.body_md5.is_some() || m.body_regex.is_some() {
                        // A HEAD answer has no body: the body check could
                        // never pass (or would be silently skipped).
                        self.push_once(
                            Problem::new(
                                head.span.clone(),
                                head.path.clone(),
                                "method HEAD with a body check (body_contains, body_regex or body_md5)",
                            )
                            .expected("method = \"GET\" when the body is checked; HEAD checks the status only")
                            .fix("use method = \"GET\", or remove the body check from this check (and the levels it inherits from)"),
                        );
                    }
                }
                ProbeSpec::Http(HttpSpec {
                    method: m.method.as_ref().map(|x| x.v).unwrap_or_default(),
                    path: m.path.clone().unwrap_or_else(|| "/".to_owned()),
                    host: m.host.clone(),
                    expect_status: m.expect_status.clone().unwrap_or_default(),
                    body_contains: m.body_contains.clone(),
                    body_md5: m.body_md5,
                    body_regex: m.body_regex.clone(),
                    tls,
                })
            }
            Type::External => match &m.command {
                Some((program, args)) => ProbeSpec::External(ExternalSpec {
                    program: program.clone(),
                    args: args.clone(),
                    service: listen.filter(|l| l.port() != 0 || !l.ip().is_unspecified()),
                    dynamic_weight: m.dynamic_weight.unwrap_or(false),
                    pass_addresses: true,
                }),
                None => {
                    if let Some(k) = &m.kind {
                        self.push_once(
                            Problem::new(
                                k.span.clone(),
                                k.path.clone(),
                                "an external check without a `command`",
                            )
                            .expected("command = [\"PROGRAM\", \"ARG\", …] with type = \"external\"")
                            .fix("add command = [\"/usr/local/bin/check-web\"] to this check table (or to a check table of the service or of [global])"),
                        );
                    }
                    ok = false;
                    ProbeSpec::Tcp
                }
            },
        };
        if !m.type_written && !matches!(kind, Type::Mysql | Type::Pgsql) {
            if let Some(v) = m.query.as_ref().or(m.database.as_ref()) {
                let key = if m.query.is_some() {
                    "query"
                } else {
                    "database"
                };
                self.push_once(
                    Problem::new(v.span.clone(), v.path.clone(), format!("`{key}` in a check without a type"))
                        .expected(format!("`{key}` with type = \"mysql\" or \"pgsql\" (or a real server on port 3306 or 5432)"))
                        .fix("add type = \"mysql\" or type = \"pgsql\" to the check table"),
                );
                ok = false;
            }
        }
        let timing = resolve(&global.params, &service.params, &real.params);
        ok.then_some(CheckSpec {
            target,
            probe,
            timing,
        })
    }

    /// The keys of the redis, smtp, dns and udp probes.
    fn protocol_keys(&mut self, node: &Node<'_>, l: &mut Layer) {
        if let Some(f) = self.field(node, "password") {
            let w = Want {
                short: "a string",
                expected: "a non-empty string: the password (redis AUTH, mysql, pgsql)",
                example: "\"s3cret\"",
            };
            if let Some(s) = self.string(&f, &w) {
                if s.is_empty() {
                    self.push(
                        Problem::new(f.span.clone(), f.path.clone(), "password is empty")
                            .expected(w.expected)
                            .fix("give the password (requirepass), or remove password"),
                    );
                } else {
                    l.password = Some(At {
                        v: s.to_owned(),
                        span: f.key_span.clone(),
                        path: f.path.clone(),
                    });
                }
            }
        }
        if let Some(f) = self.field(node, "username") {
            l.username = self
                .token(
                    &f,
                    "a user name (Redis ACL user, mysql or pgsql login)",
                    "\"healthcheck\"",
                )
                .map(|v| At {
                    v,
                    span: f.key_span.clone(),
                    path: f.path.clone(),
                });
        }
        for key in ["database", "query"] {
            let Some(f) = self.field(node, key) else {
                continue;
            };
            let (expected, example) = if key == "database" {
                ("a database name (mysql, pgsql)", "\"app\"")
            } else {
                (
                    "an SQL statement that must succeed (mysql, pgsql; ldirectord `request`)",
                    "\"SELECT 1\"",
                )
            };
            let w = Want {
                short: "a string",
                expected,
                example,
            };
            let Some(s) = self.string(&f, &w) else {
                continue;
            };
            let problem = (s.trim().is_empty() || s.contains('\0')).then(|| {
                (
                    format!("{key} {} is empty or contains NUL", quote(s)),
                    format!("write {key} = {example}"),
                )
            });
            let v = self.accept(&f, expected, problem, || At {
                v: s.to_owned(),
                span: f.key_span.clone(),
                path: f.path.clone(),
            });
            if key == "database" {
                l.database = v;
            } else {
                l.query = v;
            }
        }
        if let Some(f) = self.field(node, "helo_name") {
            l.helo_name = self.token(&f, "a host name sent with EHLO/HELO", "\"lb1.example.com\"");
        }
        if let Some(f) = self.field(node, "query_name") {
            let w = Want {
                short: "a string",
                expected: "a DNS name, \".\" for the root (default \".\")",
                example: "\"www.example.com\"",
            };
            if let Some(s) = self.string(&f, &w) {
                match halb_health::encode_name(s) {
                    Ok(_) => l.query_name = Some(s.to_owned()),
                    Err(e) => self.push(
                        Problem::new(
                            f.span.clone(),
                            f.path.clone(),
                            format!("query_name {} is not a DNS name: {e}", quote(s)),
                        )
                        .expected(w.expected)
                        .fix("labels of 1..63 ASCII bytes separated by dots, e.g. \"www.example.com\""),
                    ),
                }
            }
        }
        if let Some(f) = self.field(node, "query_type") {
            l.query_type = self
                .choice(&f, "DNS query type", QUERY_TYPES, QUERY_TYPE_SYNONYMS)
                .and_then(|t| DnsType::ALL.into_iter().find(|d| d.as_str() == t));
        }
        if let Some(f) = self.field(node, "payload") {
            let w = Want {
                short: "a string",
                expected: "a string: the datagram sent (default empty)",
                example: "\"ping\"",
            };
            l.payload = self.string(&f, &w).map(|s| s.as_bytes().to_vec());
        }
        let expect = self.field(node, "expect_reply");
        if let Some(f) = &expect {
            l.expect_reply = self.boolean(
                f,
                "true (up only when a reply comes) or false (up unless ICMP port unreachable; the default)",
            );
        }
        if let Some(f) = self.field(node, "reply_contains") {
            let w = Want {
                short: "a string",
                expected: "a non-empty string the reply must contain (implies expect_reply = true)",
                example: "\"pong\"",
            };
            if let Some(s) = self.string(&f, &w) {
                if s.is_empty() {
                    self.push(
                        Problem::new(f.span.clone(), f.path.clone(), "reply_contains is empty")
                            .expected(w.expected)
                            .fix("give the text to look for, or remove reply_contains"),
                    );
                } else if l.expect_reply == Some(false) {
                    let line = expect.as_ref().map_or(0, |e| self.line(&e.span));
                    self.push(
                        Problem::new(
                            f.key_span.clone(),
                            f.path.clone(),
                            "`reply_contains` with expect_reply = false",
                        )
                        .expected("reply_contains only when a reply is expected")
                        .fix(format!(
                            "remove reply_contains, or set expect_reply = true (line {line})"
                        )),
                    );
                } else {
                    l.reply_contains = Some(s.as_bytes().to_vec());
                }
            }
        }
    }

    /// The keys of the simpletcp and ftp probes.
    fn stream_keys(&mut self, node: &Node<'_>, l: &mut Layer) {
        if let Some(f) = self.field(node, "send") {
            let w = Want {
                short: "a string",
                expected: "a string sent after the connect (escapes \\r \\n \\t \\0 \\\\ \\xHH, as ldirectord's request)",
                example: "\"PING\\r\\n\"",
            };
            if let Some(s) = self.string(&f, &w) {
                match halb_health::spec::unescape(s) {
                    Ok(bytes) => l.send = Some(bytes),
                    Err(e) => self.push(
                        Problem::new(
                            f.span.clone(),
                            f.path.clone(),
                            format!("send {}: {e}", quote(s)),
                        )
                        .expected(w.expected)
                        .fix(
                            "write a literal backslash as \\\\ (in a TOML basic string, \\\\\\\\)",
                        ),
                    ),
                }
            }
        }
        if let Some(f) = self.field(node, "expect_regex") {
            l.expect_regex = self.regex(&f);
        }
        if let Some(f) = self.field(node, "tls") {
            l.tls = self.boolean(
                &f,
                "true (TLS right after the connect) or false (the default)",
            );
        }
        if let Some(f) = self.field(node, "transport") {
            l.transport = match self.choice(&f, "SIP transport", TRANSPORTS, TRANSPORT_SYNONYMS) {
                Some("udp") => Some(SipTransport::Udp),
                Some("tcp") => Some(SipTransport::Tcp),
                _ => None,
            };
        }
        if let Some(f) = self.field(node, "url") {
            l.url_written = true;
            let w = Want {
                short: "a string",
                expected: "an absolute http:// URL fetched through the proxy (ldirectord's request for http_proxy)",
                example: "\"http://www.example.com/health\"",
            };
            if let Some(s) = self.string(&f, &w) {
                let problem = halb_health::proxy_url_authority(s).err().map(|e| {
                    (
                        format!("url {e}"),
                        "write url = \"http://www.example.com/health\" (scheme http, a host, then the path)".to_owned(),
                    )
                });
                l.url = self.accept(&f, w.expected, problem, || s.to_owned());
            }
        }
        if let Some(f) = self.field(node, "retrieve") {
            let w = Want {
                short: "a string",
                expected: "a file name fetched with RETR (ldirectord's request for ftp)",
                example: "\"welcome.msg\"",
            };
            if let Some(s) = self.string(&f, &w) {
                let problem = (s.is_empty() || s.contains(['\r', '\n', '\0'])).then(|| {
                    (
                        format!("retrieve {} is empty or has CR, LF or NUL", quote(s)),
                        "write retrieve = \"welcome.msg\"".to_owned(),
                    )
                });
                l.retrieve = self.accept(&f, w.expected, problem, || s.to_owned());
            }
        }
    }

    /// The keys of the ldap and radius probes.
    fn directory_keys(&mut self, node: &Node<'_>, l: &mut Layer) {
        for key in ["bind_dn", "search_base"] {
            let Some(f) = self.field(node, key) else {
                continue;
            };
            let (expected, example) = if key == "bind_dn" {
                (
                    "the DN of a simple bind (ldirectord's login), with password",
                    "\"cn=monitor,dc=example,dc=org\"",
                )
            } else {
                (
                    "the DN searched with a base scope (ldirectord's request without its /); \"\" is the root DSE, the default",
                    "\"dc=example,dc=org\"",
                )
            };
            let w = Want {
                short: "a string",
                expected,
                example,
            };
            let Some(s) = self.string(&f, &w) else {
                continue;
            };
            let empty = key == "bind_dn" && s.is_empty();
            let problem = (empty || s.chars().any(char::is_control)).then(|| {
                (
                    format!("{key} {} is empty or has control characters", quote(s)),
                    format!("write {key} = {example}"),
                )
            });
            if key == "bind_dn" {
                l.bind_dn = self.accept(&f, expected, problem, || At {
                    v: s.to_owned(),
                    span: f.key_span.clone(),
                    path: f.path.clone(),
                });
            } else {
                l.search_base = self.accept(&f, expected, problem, || s.to_owned());
            }
        }
        if let Some(f) = self.field(node, "secret") {
            l.secret_written = true;
            let w = Want {
                short: "a string",
                expected:
                    "the RADIUS shared secret (this client's secret in the server's clients.conf)",
                example: "\"testing123\"",
            };
            if let Some(s) = self.string(&f, &w) {
                let problem = (s.is_empty() || s.contains('\0')).then(|| {
                    (
                        "secret is empty or contains NUL".to_owned(),
                        "give the shared secret from the RADIUS server's clients.conf".to_owned(),
                    )
                });
                l.secret = self.accept(&f, w.expected, problem, || s.to_owned());
            }
        }
        if let Some(f) = self.field(node, "require_accept") {
            l.require_accept = self.boolean(
                &f,
                "true (only Access-Accept is up) or false (Access-Reject is up too: the server answers; the default, as ldirectord)",
            );
        }
    }

    fn push_once(&mut self, p: Problem) {
        let key = (p.span.start, p.message.clone());
        if self.once.insert(key) {
            self.push(p);
        }
    }

    pub(super) fn boolean(&mut self, f: &Field, expected: &str) -> Option<bool> {
        if let Kind::Bool(b) = f.kind {
            return Some(b);
        }
        let fix = match f.kind {
            Kind::Str(s) if matches!(s, "true" | "false" | "yes" | "no" | "on" | "off") => {
                let b = matches!(s, "true" | "yes" | "on");
                Some(format!("write {} = {b} (without quotes)", f.name))
            }
            Kind::Int(i @ (0 | 1)) => Some(format!("write {} = {}", f.name, i == 1)),
            _ => None,
        };
        let w = Want {
            short: "a boolean",
            expected,
            example: "true",
        };
        self.type_error(f, &w, fix);
        None
    }

    /// A string without spaces or control characters (a header value or
    /// a server name).
    fn token(&mut self, f: &Field, expected: &str, example: &str) -> Option<String> {
        let w = Want {
            short: "a string",
            expected,
            example,
        };
        let s = self.string(f, &w)?;
        if s.is_empty() || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            self.push(
                Problem::new(
                    f.span.clone(),
                    f.path.clone(),
                    format!(
                        "{} {} is empty or has spaces or control characters",
                        f.name,
                        quote(s)
                    ),
                )
                .expected(format!("{expected}, without spaces"))
                .fix(format!("write {} = {example}", f.name)),
            );
            return None;
        }
        Some(s.to_owned())
    }

    fn http_path(&mut self, f: &Field) -> Option<String> {
        let w = Want {
            short: "a string",
            expected: "a request path starting with /",
            example: "\"/health\"",
        };
        let s = self.string(f, &w)?;
        let problem = if !s.starts_with('/') {
            Some((
                format!("path {} does not start with /", quote(s)),
                format!(
                    "write path = {}",
                    quote(&format!("/{}", s.trim_start_matches('/')))
                ),
            ))
        } else if s.chars().any(|c| c.is_control() || c == ' ') {
            Some((
                format!("path {} has spaces or control characters", quote(s)),
                "percent-encode them: a space is %20".to_owned(),
            ))
        } else {
            None
        };
        self.accept(
            f,
            "a request path starting with /, e.g. \"/health\"",
            problem,
            || s.to_owned(),
        )
    }

    fn statuses(&mut self, f: &Field) -> Option<Vec<RangeInclusive<u16>>> {
        const EXPECTED: &str = "status codes 100..599: an integer, a \"200-299\" range, or an array of them (default 200-299)";
        let one = |cx: &mut Self, e: &Field| -> Option<RangeInclusive<u16>> {
            let code = |n: i64| u16::try_from(n).ok().filter(|c| (100..=599).contains(c));
            let (range, text) = match e.kind {
                Kind::Int(n) => (code(n).map(|c| c..=c), n.to_string()),
                Kind::Str(s) => {
                    let r = match s.split_once('-') {
                        Some((a, b)) => a
                            .trim()
                            .parse::<i64>()
                            .ok()
                            .and_then(code)
                            .zip(b.trim().parse::<i64>().ok().and_then(code))
                            .filter(|(a, b)| a <= b)
                            .map(|(a, b)| a..=b),
                        None => s.trim().parse::<i64>().ok().and_then(code).map(|c| c..=c),
                    };
                    (r, quote(s))
                }
                _ => {
                    let w = Want {
                        short: "a status code",
                        expected: EXPECTED,
                        example: "[200, \"300-399\"]",
                    };
                    cx.type_error(e, &w, None);
                    return None;
                }
            };
            if range.is_none() {
                cx.push(
                    Problem::new(
                        e.span.clone(),
                        e.path.clone(),
                        format!("{text} is not a status code or range"),
                    )
                    .expected(EXPECTED)
                    .fix(
                        "use codes 100..599, ranges low first: expect_status = [200, \"300-399\"]",
                    ),
                );
            }
            range
        };
        match f.kind {
            Kind::Array(a) => {
                if a.is_empty() {
                    self.push(
                        Problem::new(f.span.clone(), f.path.clone(), "expect_status is empty")
                            .expected(EXPECTED)
                            .fix("list the accepted codes, or remove expect_status for 200-299"),
                    );
                    return None;
                }
                let mut out = Vec::new();
                let mut ok = true;
                for (i, v) in a.iter().enumerate() {
                    let e = self.element(f, i, v);
                    match one(self, &e) {
                        Some(r) => out.push(r),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => one(self, f).map(|r| vec![r]),
        }
    }

    fn regex(&mut self, f: &Field) -> Option<BodyRegex> {
        let body = f.name == "body_regex";
        let w = Want {
            short: "a string",
            expected: if body {
                "a regular expression the response body must match (Rust regex syntax)"
            } else {
                "a regular expression the reply must match (Rust regex syntax; ldirectord's receive)"
            },
            example: "\"status: *(ok|degraded)\"",
        };
        let s = self.string(f, &w)?;
        match BodyRegex::new(s) {
            Ok(re) => Some(re),
            Err(e) => {
                // The regex crate's message ends with "error: <what>".
                let what = e
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or(&e)
                    .trim()
                    .trim_start_matches("error: ")
                    .to_owned();
                self.push(
                    Problem::new(
                        f.span.clone(),
                        f.path.clone(),
                        format!("{} {} is not a valid regular expression: {what}", f.name, quote(s)),
                    )
                    .expected(w.expected)
                    .fix(if body {
                        "fix the expression (escape literal ( ) [ ] . * + ? with a backslash), or use body_contains for plain text"
                    } else {
                        "fix the expression (escape literal ( ) [ ] . * + ? with a backslash)"
                    }),
                );
                None
            }
        }
    }

    fn md5(&mut self, f: &Field) -> Option<[u8; 16]> {
        let w = Want {
            short: "a string",
            expected: "32 hexadecimal digits (an MD5 digest, as genhash prints it)",
            example: "\"5d41402abc4b2a76b9719d911017c592\"",
        };
        let s = self.string(f, &w)?;
        let t = s.trim();
        let mut out = [0u8; 16];
        let valid = t.len() == 32
            && t.is_ascii()
            && out.iter_mut().enumerate().all(|(i, b)| {
                match t.get(2 * i..2 * i + 2).map(|h| u8::from_str_radix(h, 16)) {
                    Some(Ok(v)) => {
                        *b = v;
                        true
                    }
                    _ => false,
                }
            });
        if valid {
            return Some(out);
        }
        self.push(
            Problem::new(
                f.span.clone(),
                f.path.clone(),
                format!("body_md5 {} is not an MD5 digest", quote(s)),
            )
            .expected(w.expected)
            .fix(
                "give the 32 hex digits of `md5sum` of the expected body (or keepalived's genhash)",
            ),
        );
        None
    }

    /// A file path; a relative one is taken from the config file's
    /// directory. The file is not read here.
    pub(super) fn file_path(&mut self, f: &Field, example: &str) -> Option<PathBuf> {
        let w = Want {
            short: "a string",
            expected: "a path to a PEM file (relative paths start at the config file's directory)",
            example,
        };
        let s = self.string(f, &w)?;
        if s.is_empty() || s.contains('\0') {
            self.push(
                Problem::new(
                    f.span.clone(),
                    f.path.clone(),
                    format!("{} is empty or contains NUL", f.name),
                )
                .expected(w.expected)
                .fix(format!("write {} = {example}", f.name)),
            );
            return None;
        }
        let p = PathBuf::from(s);
        Some(match self.file.parent() {
            Some(dir) if p.is_relative() && !dir.as_os_str().is_empty() => dir.join(p),
            _ => p,
        })
    }

    fn command(&mut self, f: &Field) -> Option<(PathBuf, Vec<String>)> {
        const EXPECTED: &str = "an array: the program, then its arguments";
        let Kind::Array(a) = f.kind else {
            let fix = match f.kind {
                Kind::Str(s) => {
                    let parts: Vec<String> = s.split_whitespace().map(quote).collect();
                    format!(
                        "write an array (no shell is used): command = [{}]",
                        parts.join(", ")
                    )
                }
                _ => "write command = [\"/usr/local/bin/check\", \"arg\"]".to_owned(),
            };
            let w = Want {
                short: "an array",
                expected: EXPECTED,
                example: "",
            };
            self.type_error(f, &w, Some(fix));
            return None;
        };
        let mut words = Vec::new();
        let mut ok = true;
        for (i, v) in a.iter().enumerate() {
            let e = self.element(f, i, v);
            let w = Want {
                short: "a string",
                expected: "a program path or an argument",
                example: "\"--quiet\"",
            };
            match self.string(&e, &w) {
                Some(s) if s.contains('\0') || (i == 0 && s.is_empty()) => {
                    self.push(
                        Problem::new(
                            e.span.clone(),
                            e.path.clone(),
                            "empty program or NUL character",
                        )
                        .expected(EXPECTED)
                        .fix("give the program's path first, e.g. \"/usr/local/bin/check\""),
                    );
                    ok = false;
                }
                Some(s) => words.push(s.to_owned()),
                None => ok = false,
            }
        }
        if a.is_empty() {
            self.push(
                Problem::new(f.span.clone(), f.path.clone(), "command is empty")
                    .expected(EXPECTED)
                    .fix("write command = [\"/usr/local/bin/check\", \"arg\"]"),
            );
            return None;
        }
        if !ok {
            return None;
        }
        let mut it = words.into_iter();
        let program = PathBuf::from(it.next()?);
        Some((program, it.collect()))
    }
}
