//! Walking the spanned document by hand: every key checked, every problem
//! kept, each with its place in the file.

use crate::diag::{ConfigError, ConfigErrors, Problem, SourceMap};
use crate::suggest::{closest, distance, normalize};
use crate::values::{self, quote, Diag, DURATION_EXPECTED, NETMASK_EXPECTED};
use crate::{Config, Global};
use halb_table::{
    OnDown, Persistence, Protocol, ProxyProtocol, RealServer, SchedulerFlags, SchedulerKind,
    ServiceKey, VirtualService,
};
use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml_edit::{Array, ArrayOfTables, ImDocument, InlineTable, Item, Table, TomlError, Value};

mod alert;
mod check;
pub(crate) mod incremental;
mod ipvs;
mod quorum;
pub(crate) mod resource;
mod sync;
pub(crate) mod vrrp;

type Span = Range<usize>;

/// A value with where it was written, for errors found after the walk
/// (when layers are merged, or tables compared).
#[derive(Debug, Clone)]
struct At<T> {
    v: T,
    span: Span,
    path: String,
}

const ROOT_KEYS: &[&str] = &[
    "global",
    "virtual_service",
    "vrrp_instance",
    "vrrp_sync_group",
    "resource_group",
];
const GLOBAL_KEYS: &[&str] = &[
    "control_socket",
    "control_socket_group",
    "control_socket_read_group",
    "workers",
    "check_concurrency",
    "http_listen",
    "http_token",
    "connect_timeout",
    "connect_attempts",
    "idle_timeout",
    "udp_timeout",
    "udp_max_flows",
    "max_fails",
    "fail_timeout",
    "drain_timeout",
    "on_down",
    "check",
    "alert",
    "data_plane",
    "ipvs",
    "sync",
    "quorum",
];
const SERVICE_KEYS: &[&str] = &[
    "name",
    "listen",
    "protocol",
    "scheduler",
    "scheduler_flags",
    "fallback",
    "fallback_forward",
    "on_down",
    "proxy_protocol",
    "connect_timeout",
    "connect_attempts",
    "idle_timeout",
    "udp_timeout",
    "udp_max_flows",
    "max_fails",
    "fail_timeout",
    "persistence",
    "check",
    "alert",
    "real_server",
    "data_plane",
    "fwmark",
    "one_packet",
];
const PERSISTENCE_KEYS: &[&str] = &["timeout", "netmask", "prefix_v6"];
const REAL_KEYS: &[&str] = &[
    "address",
    "weight",
    "upper_threshold",
    "lower_threshold",
    "check",
    "forward",
    "tunnel_type",
    "tunnel_port",
    "tunnel_checksum",
    "on_down",
];

const SCHEDULER_SYNONYMS: &[(&str, &str)] = &[
    ("roundrobin", "rr"),
    ("weightedroundrobin", "wrr"),
    ("leastconn", "lc"),
    ("leastconnection", "lc"),
    ("leastconnections", "lc"),
    ("weightedleastconnection", "wlc"),
    ("weightedleastconnections", "wlc"),
    ("shortestexpecteddelay", "sed"),
    ("neverqueue", "nq"),
    ("source", "sh"),
    ("sourcehash", "sh"),
    ("sourcehashing", "sh"),
    ("iphash", "sh"),
    ("destinationhash", "dh"),
    ("destinationhashing", "dh"),
    ("maglev", "mh"),
    ("maglevhash", "mh"),
    ("maglevhashing", "mh"),
    ("failover", "fo"),
    ("weightedfailover", "fo"),
    ("overflow", "ovf"),
    ("weightedoverflow", "ovf"),
];
const PROTOCOL_SYNONYMS: &[(&str, &str)] = &[
    ("tcp4", "tcp"),
    ("tcp6", "tcp"),
    ("udp4", "udp"),
    ("udp6", "udp"),
];
const ON_DOWN_SYNONYMS: &[(&str, &str)] = &[
    ("quiesce", "quiescent"),
    ("quiesced", "quiescent"),
    ("drain", "quiescent"),
    ("weight0", "quiescent"),
    ("delete", "remove"),
    ("removed", "remove"),
];
const PROXY_SYNONYMS: &[(&str, &str)] = &[
    ("1", "v1"),
    ("2", "v2"),
    ("version1", "v1"),
    ("version2", "v2"),
];
const FLAG_SYNONYMS: &[(&str, &str)] = &[
    ("shfallback", "fallback"),
    ("mhfallback", "fallback"),
    ("shport", "port"),
    ("mhport", "port"),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Root,
    Global,
    Service,
    Persistence,
    Real,
    Check,
    Alert,
    Ipvs,
    SyncDaemon,
    Sync,
    SyncPeer,
    Quorum,
}

impl Section {
    fn keys(self) -> &'static [&'static str] {
        match self {
            Section::Root => ROOT_KEYS,
            Section::Global => GLOBAL_KEYS,
            Section::Service => SERVICE_KEYS,
            Section::Persistence => PERSISTENCE_KEYS,
            Section::Real => REAL_KEYS,
            Section::Check => check::CHECK_KEYS,
            Section::Alert => alert::ALERT_KEYS,
            Section::Ipvs => ipvs::IPVS_KEYS,
            Section::SyncDaemon => ipvs::SYNC_KEYS,
            Section::Sync => sync::SYNC_KEYS,
            Section::SyncPeer => sync::PEER_KEYS,
            Section::Quorum => quorum::QUORUM_KEYS,
        }
    }

    fn expected(self) -> String {
        let (what, keys) = match self {
            Section::Root => return "a [global] table or [[virtual_service]] tables".to_owned(),
            Section::Global => ("a [global] key", GLOBAL_KEYS),
            Section::Service => ("a virtual service key", SERVICE_KEYS),
            Section::Persistence => ("a persistence key", PERSISTENCE_KEYS),
            Section::Real => ("a real server key", REAL_KEYS),
            Section::Check => ("a check key", check::CHECK_KEYS),
            Section::Alert => ("an alert key", alert::ALERT_KEYS),
            Section::Ipvs => ("a [global.ipvs] key", ipvs::IPVS_KEYS),
            Section::SyncDaemon => ("a [global.ipvs.sync_daemon] key", ipvs::SYNC_KEYS),
            Section::Sync => ("a [global.sync] key", sync::SYNC_KEYS),
            Section::SyncPeer => ("a [global.sync] peers key", sync::PEER_KEYS),
            Section::Quorum => ("a [global.quorum] key", quorum::QUORUM_KEYS),
        };
        format!("{what}: {}", keys.join(", "))
    }
}

/// A fix for an unknown key that edit distance would not find: a key put in
/// the wrong table, or what keepalived, ldirectord or a proxy call it.
fn key_hint(section: Section, key: &str) -> Option<String> {
    key_hint_of(section, key).or_else(|| alert_hint(section, key)).or_else(|| {
        let k = normalize(key);
        let check_key = check::CHECK_KEYS.iter().find(|n| normalize(n) == k)?;
        let table = match section {
            Section::Global => "[global.check]",
            Section::Service => "[virtual_service.check]",
            Section::Real => "[virtual_service.real_server.check]",
            _ => return None,
        };
        Some(format!(
            "`{check_key}` is a health-check setting: put it in a check table, {table} or check = {{ {check_key} = … }}"
        ))
    })
}

/// An alert key (or ldirectord's name for one) outside an alert table.
fn alert_hint(section: Section, key: &str) -> Option<String> {
    let table = match section {
        Section::Global => "[global.alert]",
        Section::Service => "[virtual_service.alert]",
        _ => return None,
    };
    let k = normalize(key);
    let name = match alert::ALERT_KEYS.iter().find(|n| normalize(n) == k) {
        Some(n) => (*n).to_owned(),
        None if k.starts_with("emailalert") => {
            let hint = alert::alert_key_hint(key)?;
            hint.split('`').nth(1)?.to_owned()
        }
        None => return None,
    };
    Some(format!(
        "`{name}` is an alert setting: put it in an alert table, {table} or alert = {{ {name} = … }}"
    ))
}

fn key_hint_of(section: Section, key: &str) -> Option<String> {
    let k = normalize(key);
    // Exact, or one typo away for longer words ("timeuot").
    let is = |names: &[&str]| {
        names.iter().any(|n| {
            let n = normalize(n);
            n == k || (k.len() >= 6 && distance(&n, &k) <= 1)
        })
    };
    let of = |keys: &[&'static str]| -> Option<&'static str> {
        keys.iter().find(|n| normalize(n) == k).copied()
    };
    let hint = match section {
        Section::Alert => return alert::alert_key_hint(key).map(str::to_owned),
        Section::Ipvs | Section::SyncDaemon | Section::SyncPeer | Section::Quorum => return None,
        Section::Sync => {
            if is(&["peer", "peer_address", "remote", "remotes"]) {
                "did you mean `peers`? peers = [{ name = \"d2\", address = \"192.0.2.2:7947\" }]"
                    .to_owned()
            } else if is(&["secret", "password", "psk", "auth"]) {
                "did you mean `key`? key = \"…\" (64 hex digits or a passphrase of 16+ bytes)"
                    .to_owned()
            } else if is(&["address", "bind", "port"]) {
                "did you mean `listen`? listen = \"192.0.2.1:7947\"".to_owned()
            } else {
                return None;
            }
        }
        Section::Check => {
            if let Some(h) = check::check_key_hint(key) {
                h.to_owned()
            } else if is(&["on_down", "quiescent"]) {
                "on_down is set per virtual service or in [global], not in a check table".to_owned()
            } else {
                return None;
            }
        }
        Section::Root => {
            if is(&[
                "virtual_server",
                "virtual_servers",
                "virtual_services",
                "service",
                "services",
                "vs",
            ]) {
                "did you mean `virtual_service`? each service is a [[virtual_service]] table"
                    .to_owned()
            } else if is(&["real_server", "real_servers"]) {
                "real servers belong to a virtual service: write [[virtual_service.real_server]] after its [[virtual_service]]".to_owned()
            } else if is(&["persistence"]) {
                "persistence belongs to a virtual service: write [virtual_service.persistence] after its [[virtual_service]]".to_owned()
            } else if let Some(g) = of(GLOBAL_KEYS) {
                format!("`{g}` belongs in [global]: move it below a [global] header")
            } else if let Some(s) = of(SERVICE_KEYS) {
                format!("`{s}` belongs to a virtual service: move it below a [[virtual_service]] header")
            } else if let Some(r) = of(REAL_KEYS) {
                format!("`{r}` belongs to a real server: move it below a [[virtual_service.real_server]] header")
            } else {
                return None;
            }
        }
        Section::Global => {
            if let Some(s) = of(SERVICE_KEYS) {
                format!("`{s}` is set per virtual service: move it into each [[virtual_service]]")
            } else if let Some(r) = of(REAL_KEYS) {
                format!("`{r}` is set per real server, in [[virtual_service.real_server]]")
            } else if is(&["worker", "threads", "thread", "nthreads"]) {
                "did you mean `workers`?".to_owned()
            } else if is(&["socket", "control", "ctl_socket", "control_sock"]) {
                "did you mean `control_socket`?".to_owned()
            } else {
                return None;
            }
        }
        Section::Service => {
            if is(&["control_socket", "workers", "check_concurrency"]) {
                format!("`{key}` is a daemon setting: move it into [global]")
            } else if is(&[
                "address",
                "addr",
                "ip",
                "vip",
                "bind",
                "listen_address",
                "virtual_ip",
            ]) {
                "a virtual service has `listen` (`address` is for real servers): listen = \"0.0.0.0:80\"".to_owned()
            } else if let Some(r) = of(REAL_KEYS) {
                format!("`{r}` is set per real server: move it below a [[virtual_service.real_server]] header")
            } else if is(&["timeout"]) {
                "a service has connect_timeout, idle_timeout and udp_timeout; the persistence timeout goes in [virtual_service.persistence]".to_owned()
            } else if let Some(p) = of(&["netmask", "prefix_v6"]) {
                format!("`{p}` belongs in [virtual_service.persistence]")
            } else if is(&["port"]) {
                "put the port into listen: listen = \"0.0.0.0:80\"".to_owned()
            } else if is(&[
                "lb_algo",
                "algorithm",
                "algo",
                "balance",
                "sched",
                "lb_method",
                "method",
            ]) {
                "did you mean `scheduler`?".to_owned()
            } else if is(&[
                "persistence_timeout",
                "persistent",
                "persist",
                "sticky",
                "stickiness",
            ]) {
                "use a [virtual_service.persistence] table with timeout = \"300s\"".to_owned()
            } else if is(&[
                "real_servers",
                "reals",
                "real",
                "backend",
                "backends",
                "server",
                "servers",
                "upstream",
                "upstreams",
            ]) {
                "did you mean `real_server`? write each one as a [[virtual_service.real_server]] table".to_owned()
            } else if is(&["sorry_server", "sorryserver"]) {
                "did you mean `fallback`?".to_owned()
            } else if is(&["quiescent"]) {
                "use on_down = \"quiescent\" (or \"remove\")".to_owned()
            } else if is(&["proto"]) {
                "did you mean `protocol`?".to_owned()
            } else if is(&["flags", "sched_flags"]) {
                "did you mean `scheduler_flags`?".to_owned()
            } else if is(&["proxy", "send_proxy", "proxy_protocol_version"]) {
                "did you mean `proxy_protocol`?".to_owned()
            } else {
                return None;
            }
        }
        Section::Persistence => {
            if is(&[
                "mask",
                "persistence_netmask",
                "netmask_v4",
                "prefix_v4",
                "prefix",
                "prefix_len",
                "granularity",
            ]) {
                "did you mean `netmask`? it takes a dotted mask or a prefix length for IPv4 clients"
                    .to_owned()
            } else if is(&[
                "prefix6",
                "netmask_v6",
                "v6_prefix",
                "prefix_len_v6",
                "prefix_length_v6",
            ]) {
                "did you mean `prefix_v6`?".to_owned()
            } else if is(&["persistence_timeout", "ttl", "expire", "expiry"]) {
                "did you mean `timeout`?".to_owned()
            } else {
                return None;
            }
        }
        Section::Real => {
            if is(&[
                "ip", "addr", "host", "server", "real", "rip", "real_ip", "backend", "listen",
            ]) {
                "did you mean `address`? address = \"192.0.2.10:80\"".to_owned()
            } else if is(&["port"]) {
                "put the port into address: address = \"192.0.2.10:80\"".to_owned()
            } else if is(&[
                "upper",
                "uthreshold",
                "max_conn",
                "max_conns",
                "maxconn",
                "max_connections",
            ]) {
                "did you mean `upper_threshold`?".to_owned()
            } else if is(&["lower", "lthreshold", "min_conn", "min_conns"]) {
                "did you mean `lower_threshold`?".to_owned()
            } else if let Some(s) = of(SERVICE_KEYS) {
                format!("`{s}` is set per virtual service: move it above the first [[virtual_service.real_server]] of the service")
            } else if let Some(g) = of(GLOBAL_KEYS) {
                format!("`{g}` belongs in [global]")
            } else {
                return None;
            }
        }
    };
    Some(hint)
}

/// A table, standard (`[x]`) or inline (`x = { … }`).
#[derive(Clone, Copy)]
enum Tbl<'a> {
    Std(&'a Table),
    Inline(&'a InlineTable),
}

impl<'a> Tbl<'a> {
    fn names(self) -> Vec<&'a str> {
        match self {
            Tbl::Std(t) => t.iter().map(|(k, _)| k).collect(),
            Tbl::Inline(t) => t.iter().map(|(k, _)| k).collect(),
        }
    }
}

/// A table at a place in the configuration.
struct Node<'a> {
    tbl: Tbl<'a>,
    /// `virtual_service "web".persistence`
    path: String,
    /// Where to point for problems with the table as a whole (a missing
    /// key): its header, or the key that holds it.
    span: Span,
}

/// A value as found, typed.
#[derive(Clone, Copy)]
enum Kind<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime,
    Array(&'a Array),
    Inline(&'a InlineTable),
    Table(&'a Table),
    Tables(&'a ArrayOfTables),
    Nothing,
}

impl<'a> Kind<'a> {
    fn of_value(v: &'a Value) -> Self {
        match v {
            Value::String(s) => Kind::Str(s.value()),
            Value::Integer(i) => Kind::Int(*i.value()),
            Value::Float(x) => Kind::Float(*x.value()),
            Value::Boolean(b) => Kind::Bool(*b.value()),
            Value::Datetime(_) => Kind::Datetime,
            Value::Array(a) => Kind::Array(a),
            Value::InlineTable(t) => Kind::Inline(t),
        }
    }

    fn of_item(i: &'a Item) -> Self {
        match i {
            Item::None => Kind::Nothing,
            Item::Value(v) => Kind::of_value(v),
            Item::Table(t) => Kind::Table(t),
            Item::ArrayOfTables(a) => Kind::Tables(a),
        }
    }

    /// "a string", "an integer": what was found, without its value.
    fn kind_name(self) -> String {
        match self {
            Kind::Str(_) => "a string".to_owned(),
            Kind::Int(_) => "an integer".to_owned(),
            Kind::Float(_) => "a float".to_owned(),
            Kind::Bool(_) => "a boolean".to_owned(),
            other => other.describe(),
        }
    }

    /// "the string \"5\"", "an array": what was found.
    fn describe(self) -> String {
        match self {
            Kind::Str(s) => format!("the string {}", quote(s)),
            Kind::Int(i) => format!("the integer {i}"),
            Kind::Float(x) => format!("the float {x:?}"),
            Kind::Bool(b) => format!("the boolean {b}"),
            Kind::Datetime => "a date-time".to_owned(),
            Kind::Array(_) => "an array".to_owned(),
            Kind::Inline(_) => "an inline table".to_owned(),
            Kind::Table(_) => "a table".to_owned(),
            Kind::Tables(_) => "an array of tables".to_owned(),
            Kind::Nothing => "nothing".to_owned(),
        }
    }
}

/// One key's value, with its place.
struct Field<'a> {
    /// The key as written (for "write weight = 5").
    name: &'a str,
    kind: Kind<'a>,
    /// `virtual_service "web".real_server[0].weight`
    path: String,
    key_span: Span,
    /// The value (for a table: its header).
    span: Span,
}

/// What a value should be, for type errors.
struct Want<'w> {
    /// "an integer"
    short: &'w str,
    /// "an integer 0..65535 (default 1)"
    expected: &'w str,
    /// A valid value as TOML: `1`, `"0.0.0.0:80"`.
    example: &'w str,
}

/// `base.key`, quoting keys that are not bare.
fn join(base: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let k = if bare { key.to_owned() } else { quote(key) };
    if base.is_empty() {
        k
    } else {
        format!("{base}.{k}")
    }
}

/// A table's span covers its whole body; point at its header line only,
/// without a trailing comment.
fn header_span(src: &str, span: Span) -> Span {
    let start = span.start;
    let Some(rest) = src.get(start..span.end.max(start)) else {
        return span;
    };
    let mut quote: Option<char> = None;
    let mut end = 0;
    for (i, c) in rest.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, '#' | '\n' | '\r') => break,
            None if matches!(c, '"' | '\'') => quote = Some(c),
            None => {}
        }
        end = i + c.len_utf8();
    }
    let header = rest.get(..end).unwrap_or("").trim_end();
    start..start + header.len()
}

/// The daemon-wide defaults a service inherits.
#[derive(Clone, Copy)]
struct Defaults {
    connect_timeout: Duration,
    connect_attempts: u32,
    idle_timeout: Duration,
    udp_timeout: Duration,
    max_fails: u32,
    fail_timeout: Duration,
    on_down: OnDown,
    data_plane: halb_table::DataPlaneKind,
}

/// A checked real server's check, and its own on_down (over its service's).
type CheckedReal = (halb_health::CheckSpec, Option<OnDown>);

/// What the cross-service checks need to know of one service.
#[derive(Clone)]
struct Svc {
    vs: VirtualService,
    /// `[[virtual_service]]` header.
    span: Span,
    /// The `name` value, if given.
    name_span: Option<Span>,
    /// Whether `vs.name` is known (given, or derived from a valid listen).
    name_known: bool,
    /// The `listen` value, if it and the protocol are valid.
    key_span: Option<Span>,
    label: String,
    /// The health check of each real server that has one.
    checks: Vec<(SocketAddr, CheckedReal)>,
    /// Its alert settings (its `alert` table over the global one).
    alert: halb_alert::AlertSpec,
    ok: bool,
}

struct Cx<'s> {
    src: &'s str,
    file: &'s Path,
    map: SourceMap<'s>,
    errors: Vec<ConfigError>,
    /// Problems already reported (span start, message): a problem of a
    /// check table inherited by many real servers is reported once.
    once: HashSet<(usize, String)>,
    /// `[global.ipvs.sync_daemon] vrrp_instance`, checked once the VRRP
    /// instances are known.
    sync_follow: Option<(Span, String)>,
    /// Where `[global.quorum]` is, checked once the VRRP instances are
    /// known.
    quorum_at: Option<Span>,
}

/// Parse and check a whole file.
pub(crate) fn check(src: &str, file: &Path) -> Result<Config, ConfigErrors> {
    let mut cx = Cx::new(src, file);
    let config = match ImDocument::parse(src) {
        Ok(doc) => Some(cx.root(doc.as_table())),
        Err(e) => {
            cx.syntax(&e);
            None
        }
    };
    cx.outcome(config)
}

/// What `[global]` gives every virtual service.
struct Head {
    global: Global,
    defaults: Defaults,
    check: check::Layer,
    alert: alert::Layer,
}

impl<'s> Cx<'s> {
    fn new(src: &'s str, file: &'s Path) -> Self {
        Cx {
            src,
            file,
            map: SourceMap::new(src),
            errors: Vec::new(),
            once: HashSet::new(),
            sync_follow: None,
            quorum_at: None,
        }
    }

    /// The config, or every problem found, in source order.
    fn outcome(self, config: Option<Config>) -> Result<Config, ConfigErrors> {
        match config {
            Some(c) if self.errors.is_empty() => Ok(c),
            _ => {
                let mut errors = self.errors;
                errors.sort_by_key(|e| (e.line, e.column));
                Err(ConfigErrors {
                    file: self.file.to_owned(),
                    errors,
                })
            }
        }
    }

    fn push(&mut self, p: Problem) {
        let e = self.map.place(self.file, p);
        self.errors.push(e);
    }

    /// Accept `value`, or report `problem` (message, fix) on `f` with what
    /// was `expected` and yield nothing.
    fn accept<T>(
        &mut self,
        f: &Field,
        expected: &str,
        problem: Option<(String, String)>,
        value: impl FnOnce() -> T,
    ) -> Option<T> {
        match problem {
            Some((message, fix)) => {
                self.push(
                    Problem::new(f.span.clone(), f.path.clone(), message)
                        .expected(expected)
                        .fix(fix),
                );
                None
            }
            None => Some(value()),
        }
    }

    fn push_diag(&mut self, f: &Field, d: Diag) {
        self.push(
            Problem::new(f.span.clone(), f.path.clone(), d.message)
                .expected(d.expected)
                .fix(d.fix),
        );
    }

    fn line(&self, span: &Span) -> usize {
        self.map.line_of(span.start)
    }

    fn raw(&self, span: &Span) -> &'s str {
        self.src.get(span.clone()).unwrap_or("")
    }

    // ------------------------------------------------------------ syntax

    fn syntax(&mut self, e: &TomlError) {
        let end = self.src.len();
        let mut span = e.span().unwrap_or(end..end);
        let mut first = "";
        let mut expected: Option<String> = None;
        let mut extra = Vec::new();
        for l in e.message().lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(x) = l.strip_prefix("expected ") {
                expected = Some(x.to_owned());
            } else if first.is_empty() {
                first = l;
            } else {
                extra.push(l);
            }
        }
        let at = self.src.get(span.start..).unwrap_or("");
        let word: String = at
            .chars()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .collect();
        if !word.is_empty() {
            span = span.start..span.start + word.len();
        }
        let dup = extra
            .iter()
            .chain(std::iter::once(&first))
            .find_map(|l| l.strip_prefix("duplicate key `"))
            .and_then(|l| l.split_once('`'))
            .map(|(k, _)| k.to_owned());

        let (message, fix): (String, String) = if let Some(key) = dup {
            let line = self.first_definition(&key, span.start);
            if at.starts_with("[[") {
                // `[x.y]` before the first `[[x]]` made `x` a plain table.
                span = header_span(self.src, span.start..end);
                let header = self.raw(&span).to_owned();
                expected = Some(format!("{header} before any [{key}.…] table"));
                let fix = match line {
                    Some(l) => {
                        format!("move the table at line {l} below the {header} it belongs to")
                    }
                    None => format!("move the [{key}.…] table below the {header} it belongs to"),
                };
                (
                    format!("{header} after a table that already defined `{key}`"),
                    fix,
                )
            } else if at.starts_with('[') {
                span = header_span(self.src, span.start..end);
                let header = self.raw(&span).to_owned();
                expected = Some("each [table] defined once".to_owned());
                let fix = match line {
                    Some(l) => format!("merge it into the first {header}, at line {l}"),
                    None => "merge the two tables into one".to_owned(),
                };
                (format!("table {header} is defined twice"), fix)
            } else {
                expected = Some("each key once per table".to_owned());
                let fix = match line {
                    Some(l) => format!("`{key}` is already set at line {l}: keep one of them"),
                    None => format!("`{key}` is already set in this table: keep one of them"),
                };
                (format!("duplicate key `{key}`"), fix)
            }
        } else if first == "invalid string" && word.starts_with(|c: char| c.is_alphabetic()) {
            expected = Some(
                "a value: a \"string\", a number, true or false, an [array] or an { inline table }"
                    .to_owned(),
            );
            match closest(&word, &["true", "false"]) {
                Some(b) => (
                    format!("invalid value `{word}`"),
                    format!("did you mean `{b}`?"),
                ),
                None => (
                    format!("unquoted string `{word}`"),
                    format!("strings are quoted in TOML: \"{word}\""),
                ),
            }
        } else if first.is_empty() && expected.is_none() {
            expected = Some("a value".to_owned());
            (
                "missing value".to_owned(),
                "write a value after `=`, e.g. key = \"value\"".to_owned(),
            )
        } else if first.is_empty() && expected.as_deref() == Some("newline, `#`") {
            expected = Some("the end of the line, or a # comment".to_owned());
            (
                "unexpected text after the value".to_owned(),
                "write one key = value per line; start comments with #".to_owned(),
            )
        } else if first.is_empty() && expected.as_deref() == Some("`.`, `=`") {
            expected = Some("`=` after the key".to_owned());
            (
                "expected `=` after the key".to_owned(),
                "write key = value; quote keys that have spaces or other special characters"
                    .to_owned(),
            )
        } else {
            let (exp, fix) = match first {
                "invalid table header" => (None, "close the header: [global], [[virtual_service]]"),
                "invalid basic string" | "invalid literal string" => (
                    Some("the closing quote"),
                    "close the string with its quote before the end of the line",
                ),
                "invalid escape sequence" => (
                    None,
                    "in \"strings\" a backslash starts an escape: write \\\\ for a backslash, or use a 'literal string'",
                ),
                "invalid inline table" => (
                    None,
                    "an inline table { … } fits on one line, without a trailing comma; use a [table] for more",
                ),
                "invalid array" => (None, "close the array with `]`; separate the elements with commas"),
                _ => (None, "fix the TOML syntax here"),
            };
            if let Some(x) = exp {
                expected = Some(x.to_owned());
            }
            let mut m = if first.is_empty() {
                "unexpected text".to_owned()
            } else {
                first.to_owned()
            };
            for x in &extra {
                m.push_str(": ");
                m.push_str(x);
            }
            (m, fix.to_owned())
        };
        self.push(
            Problem::new(span, "", format!("TOML syntax error: {message}"))
                .expected(expected.unwrap_or_else(|| "valid TOML".to_owned()))
                .fix(format!(
                    "{fix} (keys and values are checked once the syntax is right)"
                )),
        );
    }

    /// The line where `key` (or a `[… key]` header) first appears before
    /// `before`: for "already defined at line N".
    fn first_definition(&self, key: &str, before: usize) -> Option<usize> {
        let upto = self.src.get(..before.min(self.src.len()))?;
        for (i, line) in upto.lines().enumerate() {
            let t = line.trim_start();
            if let Some(header) = t.strip_prefix('[') {
                let inner = header.trim_start_matches('[');
                let inner = inner.split(']').next().unwrap_or("");
                let mut segments = inner.split('.').map(|s| s.trim().trim_matches(['"', '\'']));
                if segments.any(|s| s == key) {
                    return Some(i + 1);
                }
            } else if let Some(rest) = t.strip_prefix(key) {
                if rest.trim_start().starts_with(['=', '.']) {
                    return Some(i + 1);
                }
            }
        }
        None
    }

    // ------------------------------------------------------------ fields

    fn field<'a>(&self, node: &Node<'a>, name: &str) -> Option<Field<'a>> {
        let (key, item) = match node.tbl {
            Tbl::Std(t) => t.get_key_value(name),
            Tbl::Inline(t) => t.get_key_value(name),
        }?;
        if item.is_none() {
            return None;
        }
        let key_span = key.span().unwrap_or_else(|| node.span.clone());
        let span = match item {
            Item::Value(v) => v.span(),
            Item::Table(t) => t.span().map(|s| header_span(self.src, s)),
            Item::ArrayOfTables(a) => a
                .get(0)
                .and_then(Table::span)
                .map(|s| header_span(self.src, s)),
            Item::None => None,
        }
        .unwrap_or_else(|| key_span.clone());
        Some(Field {
            name: key.get(),
            kind: Kind::of_item(item),
            path: join(&node.path, key.get()),
            key_span,
            span,
        })
    }

    /// Element `i` of an array value, as a field of its own.
    fn element<'a>(&self, f: &Field<'a>, i: usize, v: &'a Value) -> Field<'a> {
        Field {
            name: f.name,
            kind: Kind::of_value(v),
            path: format!("{}[{i}]", f.path),
            key_span: f.key_span.clone(),
            span: v.span().unwrap_or_else(|| f.span.clone()),
        }
    }

    fn check_keys(&mut self, node: &Node, section: Section) {
        let allowed = section.keys();
        for name in node.tbl.names() {
            if allowed.contains(&name) {
                continue;
            }
            let Some(f) = self.field(node, name) else {
                continue;
            };
            let fix = key_hint(section, name)
                .or_else(|| closest(name, allowed).map(|c| format!("did you mean `{c}`?")))
                .unwrap_or_else(|| format!("remove `{name}`"));
            self.push(
                Problem::new(
                    f.key_span.clone(),
                    f.path.clone(),
                    format!("unknown key `{name}`"),
                )
                .expected(section.expected())
                .fix(fix),
            );
        }
    }

    fn type_error(&mut self, f: &Field, w: &Want, fix: Option<String>) {
        let fix = fix.unwrap_or_else(|| format!("write {} = {}", f.name, w.example));
        // A secret's value is never quoted, only its type.
        let found = if crate::diag::secret_key(f.name) {
            f.kind.kind_name()
        } else {
            f.kind.describe()
        };
        self.push(
            Problem::new(
                f.span.clone(),
                f.path.clone(),
                format!("{found} is not {}", w.short),
            )
            .expected(w.expected)
            .fix(fix),
        );
    }

    fn string<'a>(&mut self, f: &Field<'a>, w: &Want) -> Option<&'a str> {
        if let Kind::Str(s) = f.kind {
            return Some(s);
        }
        let fix = match f.kind {
            Kind::Array(a) if a.len() == 1 => a.get(0).and_then(Value::as_str).map(|s| {
                let s = if crate::diag::secret_key(f.name) {
                    "\"…\"".to_owned()
                } else {
                    quote(s)
                };
                format!("give one value, not an array: {} = {s}", f.name)
            }),
            _ => None,
        };
        self.type_error(f, w, fix);
        None
    }

    fn int(&mut self, f: &Field, w: &Want) -> Option<i64> {
        let fix = match f.kind {
            Kind::Int(i) => return Some(i),
            Kind::Str(s) => s
                .trim()
                .parse::<i64>()
                .ok()
                .map(|n| format!("remove the quotes: {} = {n}", f.name)),
            Kind::Float(x) if x.fract() == 0.0 && x.abs() < 1e15 => {
                Some(format!("write a whole number: {} = {}", f.name, x as i64))
            }
            _ => None,
        };
        self.type_error(f, w, fix);
        None
    }

    fn int_range(&mut self, f: &Field, w: &Want, range: (i64, i64), fix: &str) -> Option<i64> {
        let v = self.int(f, w)?;
        if v < range.0 || v > range.1 {
            self.push(
                Problem::new(
                    f.span.clone(),
                    f.path.clone(),
                    format!("{} {v} is out of range", f.name),
                )
                .expected(w.expected)
                .fix(fix),
            );
            return None;
        }
        Some(v)
    }

    fn duration(&mut self, f: &Field, min: Duration, min_fix: &str) -> Option<Duration> {
        let w = Want {
            short: "a duration",
            expected: DURATION_EXPECTED,
            example: "\"3s\"",
        };
        let d = match f.kind {
            Kind::Int(n) => values::duration_from_secs(n),
            Kind::Str(s) => values::parse_duration(s),
            Kind::Float(x) => {
                self.type_error(f, &w, Some(values::float_duration_fix(x)));
                return None;
            }
            _ => {
                self.type_error(f, &w, None);
                return None;
            }
        };
        match d {
            Err(diag) => {
                self.push_diag(f, diag);
                None
            }
            Ok(d) if d < min => {
                self.push(
                    Problem::new(
                        f.span.clone(),
                        f.path.clone(),
                        format!("{} {} is too short", f.name, self.raw(&f.span)),
                    )
                    .expected(format!("at least \"{}\"", values::format_duration(min)))
                    .fix(min_fix),
                );
                None
            }
            Ok(d) => Some(d),
        }
    }

    /// One of a fixed set of strings; returns the one matched.
    fn choice(
        &mut self,
        f: &Field,
        what: &str,
        choices: &[&'static str],
        synonyms: &[(&str, &'static str)],
    ) -> Option<&'static str> {
        let expected = format!("one of {}", choices.join(", "));
        let example = choices.first().copied().unwrap_or("");
        let lookup = |s: &str| -> Option<&'static str> {
            let n = normalize(s);
            synonyms
                .iter()
                .find(|(k, _)| normalize(k) == n)
                .map(|(_, v)| *v)
                .or_else(|| closest(s, choices))
        };
        let Kind::Str(s) = f.kind else {
            let fix = match f.kind {
                Kind::Int(_) | Kind::Float(_) | Kind::Bool(_) => {
                    lookup(self.raw(&f.span)).map(|c| format!("write {} = \"{c}\"", f.name))
                }
                _ => None,
            };
            let ex = format!("\"{example}\"");
            let w = Want {
                short: "a string",
                expected: &expected,
                example: &ex,
            };
            self.type_error(f, &w, fix);
            return None;
        };
        if let Some(c) = choices.iter().find(|c| **c == s) {
            return Some(c);
        }
        let fix = match lookup(s) {
            Some(c) => format!("did you mean \"{c}\"?"),
            None => format!("use one of them, e.g. \"{example}\""),
        };
        self.push(
            Problem::new(
                f.span.clone(),
                f.path.clone(),
                format!("unknown {what} {}", quote(s)),
            )
            .expected(expected)
            .fix(fix),
        );
        None
    }

    fn addr(&mut self, f: &Field, example: &str) -> Option<SocketAddr> {
        let s = match f.kind {
            Kind::Str(s) => s,
            Kind::Int(p) => {
                let w = Want {
                    short: "an address",
                    expected: values::ADDR_EXPECTED,
                    example,
                };
                let fix = format!(
                    "write the IP address and port as a string: {} = \"0.0.0.0:{p}\"",
                    f.name
                );
                self.type_error(f, &w, Some(fix));
                return None;
            }
            _ => {
                let w = Want {
                    short: "an address",
                    expected: values::ADDR_EXPECTED,
                    example,
                };
                self.string(f, &w)?
            }
        };
        match values::parse_addr(s) {
            Ok(a) => Some(a),
            Err(d) => {
                self.push_diag(f, d);
                None
            }
        }
    }

    /// A table value (`[x]` or `x = { … }`).
    fn table<'a>(&mut self, f: &Field<'a>, w: &Want, fix: Option<String>) -> Option<Node<'a>> {
        let tbl = match f.kind {
            Kind::Table(t) => Tbl::Std(t),
            Kind::Inline(t) => Tbl::Inline(t),
            _ => {
                self.type_error(f, w, fix);
                return None;
            }
        };
        Some(Node {
            tbl,
            path: f.path.clone(),
            span: f.span.clone(),
        })
    }

    /// An array of tables (`[[x]]`, or `x = [{ … }, …]`): each table with
    /// its index and header span.
    fn tables<'a>(
        &mut self,
        f: &Field<'a>,
        header: &str,
        example: &str,
    ) -> Vec<(usize, Tbl<'a>, Span)> {
        let mut out = Vec::new();
        match f.kind {
            Kind::Tables(a) => {
                for (i, t) in a.iter().enumerate() {
                    let span = t
                        .span()
                        .map(|s| header_span(self.src, s))
                        .unwrap_or_else(|| f.span.clone());
                    out.push((i, Tbl::Std(t), span));
                }
            }
            Kind::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    match v {
                        Value::InlineTable(t) => {
                            let span = t.span().unwrap_or_else(|| f.span.clone());
                            out.push((i, Tbl::Inline(t), span));
                        }
                        _ => {
                            let e = self.element(f, i, v);
                            let expected = format!("a table: {{ {example} }}");
                            let w = Want {
                                short: "a table",
                                expected: &expected,
                                example: "",
                            };
                            self.type_error(&e, &w, Some(format!("write each element as an inline table {{ … }}, or use [[{header}]] tables")));
                        }
                    }
                }
            }
            Kind::Table(_) | Kind::Inline(_) => {
                self.push(
                    Problem::new(
                        f.span.clone(),
                        f.path.clone(),
                        format!("`{}` is a single table, not an array of tables", f.name),
                    )
                    .expected(format!(
                        "[[{header}]] tables (double brackets), one per entry"
                    ))
                    .fix(format!(
                        "write the header with double brackets: [[{header}]]"
                    )),
                );
            }
            _ => {
                let expected = format!("[[{header}]] tables, one per entry");
                let w = Want {
                    short: "an array of tables",
                    expected: &expected,
                    example: "",
                };
                self.type_error(f, &w, Some(format!("replace it with [[{header}]] tables")));
            }
        }
        out
    }

    // ------------------------------------------------------------ sections

    fn root(&mut self, doc: &Table) -> Config {
        let root = Node {
            tbl: Tbl::Std(doc),
            path: String::new(),
            span: 0..0,
        };
        let head = self.head(&root);
        let mut svcs = Vec::new();
        if let Some(f) = self.field(&root, "virtual_service") {
            for (i, tbl, span) in self.tables(&f, "virtual_service", "listen = \"0.0.0.0:80\"") {
                svcs.push(self.service(tbl, span, i, &head));
            }
        }
        self.finish(&root, head.global, &head.alert, &svcs)
    }

    /// The root's keys and `[global]`: everything a service inherits.
    fn head(&mut self, root: &Node) -> Head {
        self.check_keys(root, Section::Root);
        let global_node = match self.field(root, "global") {
            Some(f) => {
                let w = Want {
                    short: "a table",
                    expected: "a [global] table",
                    example: "",
                };
                let fix = match f.kind {
                    Kind::Tables(_) => "write the header with single brackets: [global]".to_owned(),
                    _ => "replace it with a [global] table".to_owned(),
                };
                self.table(&f, &w, Some(fix))
            }
            None => None,
        };
        let check = match global_node.as_ref().and_then(|n| self.field(n, "check")) {
            Some(f) => self.check_table(&f),
            None => check::Layer::default(),
        };
        let alert = match global_node.as_ref().and_then(|n| self.field(n, "alert")) {
            Some(f) => self.alert_table(&f),
            None => alert::Layer::default(),
        };
        let global = self.global(global_node);
        let defaults = Defaults {
            connect_timeout: global.connect_timeout,
            connect_attempts: global.connect_attempts,
            idle_timeout: global.idle_timeout,
            udp_timeout: global.udp_timeout,
            max_fails: global.max_fails,
            fail_timeout: global.fail_timeout,
            on_down: global.on_down,
            data_plane: global.data_plane,
        };
        Head {
            global,
            defaults,
            check,
            alert,
        }
    }

    /// The checks across services, the VRRP tables, and the whole config.
    fn finish(
        &mut self,
        root: &Node,
        global: Global,
        galert: &alert::Layer,
        svcs: &[Svc],
    ) -> Config {
        self.cross_check(svcs);
        let (vrrp_instances, vrrp_sync_groups) = self.vrrp(root, svcs);
        self.sync_follow_check(&vrrp_instances);
        self.quorum_check(&vrrp_instances);
        let (resource_groups, resource_alerts) = {
            let insts: Vec<&str> = vrrp_instances.iter().map(|v| v.name.as_str()).collect();
            let groups: Vec<&str> = vrrp_sync_groups.iter().map(|g| g.name.as_str()).collect();
            self.resource_groups(root, &insts, &groups, galert)
        };
        // VRRP path alerts and config sync alerts go where
        // `[global.alert]` says (only asked for with paths or
        // `[global.sync]`: a global table's own problems are reported once
        // anyway).
        let vrrp_alert =
            if global.sync.is_some() || vrrp_instances.iter().any(|v| !v.paths.is_empty()) {
                self.resolve_alert(galert, &alert::Layer::default())
            } else {
                halb_alert::AlertSpec::default()
            };
        let mut checks = Vec::new();
        let mut services = Vec::with_capacity(svcs.len());
        let mut alerts = Vec::new();
        for s in svcs.iter().filter(|s| s.ok) {
            let key = s.vs.key();
            if !s.alert.is_empty() {
                alerts.push((s.vs.name.clone(), s.alert.clone()));
            }
            checks.extend(
                s.checks
                    .iter()
                    .map(|(real, (spec, on_down))| crate::RealCheck {
                        service: key,
                        real: *real,
                        spec: spec.clone(),
                        on_down: *on_down,
                    }),
            );
            services.push(s.vs.clone());
        }
        Config {
            global,
            services,
            checks,
            alerts,
            resource_alerts,
            vrrp_alert,
            vrrp_instances,
            vrrp_sync_groups,
            resource_groups,
        }
    }

    /// `[[vrrp_instance]]` and `[[vrrp_sync_group]]` (walk/vrrp.rs).
    fn vrrp(
        &mut self,
        root: &Node,
        svcs: &[Svc],
    ) -> (Vec<vrrp::VrrpInstance>, Vec<vrrp::VrrpSyncGroup>) {
        let mut insts = Vec::new();
        if let Some(f) = self.field(root, "vrrp_instance") {
            for (i, tbl, span) in self.tables(&f, "vrrp_instance", "name = \"VI_1\"") {
                insts.push(self.vrrp_instance(tbl, span, i));
            }
        }
        let mut groups = Vec::new();
        if let Some(f) = self.field(root, "vrrp_sync_group") {
            for (i, tbl, span) in self.tables(&f, "vrrp_sync_group", "name = \"G1\"") {
                if let Some((g, spans)) = self.vrrp_sync_group(tbl, span.clone(), i) {
                    groups.push((g, spans, span));
                }
            }
        }
        let services: Vec<String> = svcs.iter().map(|s| s.vs.name.clone()).collect();
        self.vrrp_cross(&insts, &groups, &services);
        (
            insts.into_iter().filter(|x| x.ok).map(|x| x.vi).collect(),
            groups.into_iter().map(|(g, _, _)| g).collect(),
        )
    }

    fn global(&mut self, node: Option<Node>) -> Global {
        let mut g = Global::default();
        let Some(n) = node else { return g };
        self.check_keys(&n, Section::Global);
        if let Some(f) = self.field(&n, "control_socket") {
            if let Some(p) = self.socket_path(&f) {
                g.control_socket = p;
            }
        }
        if let Some(f) = self.field(&n, "control_socket_group") {
            g.control_socket_group = self.group_name(&f, "control_socket_group");
        }
        if let Some(f) = self.field(&n, "control_socket_read_group") {
            g.control_socket_read_group = self.group_name(&f, "control_socket_read_group");
        }
        let http_field = self.field(&n, "http_listen");
        if let Some(f) = &http_field {
            g.http_listen = self.addr(f, "\"127.0.0.1:9090\"");
        }
        if let Some(f) = self.field(&n, "http_token") {
            g.http_token = self.http_token(&f);
        }
        if let (Some(f), Some(addr), None) = (&http_field, g.http_listen, &g.http_token) {
            if !addr.ip().is_loopback() {
                self.push(
                    Problem::new(
                        f.span.clone(),
                        f.path.clone(),
                        format!(
                            "http_listen {addr} is not a loopback address and no http_token is set: anyone who reaches it could read the director's state"
                        ),
                    )
                    .expected("a loopback address, or http_token beside it")
                    .fix("set http_token = \"…\" (16 to 256 characters, e.g. from `openssl rand -hex 24`) in [global], or listen on 127.0.0.1"),
                );
            }
        }
        if let Some(f) = self.field(&n, "workers") {
            let w = Want {
                short: "an integer",
                expected: "an integer 0..1024 (0: one per CPU)",
                example: "0",
            };
            let fix = "use 0 for one worker per CPU, or a count up to 1024";
            if let Some(v) = self.int_range(&f, &w, (0, 1024), fix) {
                g.workers = usize::try_from(v).unwrap_or(0);
            }
        }
        if let Some(f) = self.field(&n, "check_concurrency") {
            let w = Want {
                short: "an integer",
                expected: "an integer 0..1000000 (0: 1024 or half the open-file limit)",
                example: "0",
            };
            let fix = "use 0 to derive it from the open-file limit, or a cap up to 1000000";
            if let Some(v) = self.int_range(&f, &w, (0, 1_000_000), fix) {
                g.check_concurrency = usize::try_from(v).unwrap_or(0);
            }
        }
        if let Some(f) = self.field(&n, "udp_max_flows") {
            let w = Want {
                short: "an integer",
                expected: "an integer 0..10000000 (0: a quarter of the open-file limit)",
                example: "0",
            };
            let fix = "use 0 to derive it from the open-file limit, or a total cap up to 10000000 (each service also has its own udp_max_flows)";
            if let Some(v) = self.int_range(&f, &w, (0, 10_000_000), fix) {
                g.udp_max_flows = usize::try_from(v).unwrap_or(0);
            }
        }
        let mut d = Defaults {
            connect_timeout: g.connect_timeout,
            connect_attempts: g.connect_attempts,
            idle_timeout: g.idle_timeout,
            udp_timeout: g.udp_timeout,
            max_fails: g.max_fails,
            fail_timeout: g.fail_timeout,
            on_down: g.on_down,
            data_plane: g.data_plane,
        };
        self.overrides(&n, &mut d);
        g.connect_timeout = d.connect_timeout;
        g.connect_attempts = d.connect_attempts;
        g.idle_timeout = d.idle_timeout;
        g.udp_timeout = d.udp_timeout;
        g.max_fails = d.max_fails;
        g.fail_timeout = d.fail_timeout;
        g.on_down = d.on_down;
        if let Some(f) = self.field(&n, "drain_timeout") {
            if let Some(v) = self.duration(&f, Duration::ZERO, "") {
                g.drain_timeout = v;
            }
        }
        self.ipvs_global(&n, &mut g);
        if let Some(f) = self.field(&n, "sync") {
            g.sync = self.sync(&f);
        }
        self.quorum_global(&n, &mut g);
        g
    }

    /// `http_token`: 16 to 256 printable ASCII characters, no spaces.
    fn http_token(&mut self, f: &Field) -> Option<String> {
        let w = Want {
            short: "a string",
            expected: "a token of 16 to 256 printable characters",
            example: "\"<output of openssl rand -hex 24>\"",
        };
        let s = self.string(f, &w)?;
        let problem = if !(16..=256).contains(&s.len()) {
            Some((
                format!("http_token has {} characters; it needs 16 to 256", s.len()),
                "generate one: openssl rand -hex 24".to_owned(),
            ))
        } else if !s.bytes().all(|b| b.is_ascii_graphic()) {
            Some((
                "http_token has spaces or characters outside printable ASCII".to_owned(),
                "generate one: openssl rand -hex 24".to_owned(),
            ))
        } else {
            None
        };
        let token = s.to_owned();
        self.accept(
            f,
            "a token of 16 to 256 printable characters",
            problem,
            || token,
        )
    }

    /// `control_socket_group`, `control_socket_read_group`: a group name.
    fn group_name(&mut self, f: &Field, key: &str) -> Option<String> {
        let w = Want {
            short: "a string",
            expected: "a group name",
            example: "\"halb\"",
        };
        let s = self.string(f, &w)?;
        let bad = s.is_empty()
            || s.len() > 32
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        let problem = bad.then(|| {
            (
                format!("{key} {} is not a group name", quote(s)),
                "give an existing group's name, e.g. \"halb\" (groupadd halb), or remove the key"
                    .to_owned(),
            )
        });
        let name = s.to_owned();
        self.accept(f, "a group name (letters, digits, _ - .)", problem, || name)
    }

    fn socket_path(&mut self, f: &Field) -> Option<PathBuf> {
        let w = Want {
            short: "a string",
            expected: "an absolute path",
            example: "\"/run/halb/halb.sock\"",
        };
        let s = self.string(f, &w)?;
        // sun_path is 108 bytes with the terminating NUL.
        const MAX: usize = 107;
        let problem = if s.is_empty() {
            Some((
                "control_socket is empty".to_owned(),
                "remove it to use the default, or give an absolute path".to_owned(),
            ))
        } else if s.contains('\0') {
            Some((
                "control_socket contains a NUL character".to_owned(),
                "remove the \\u0000".to_owned(),
            ))
        } else if !s.starts_with('/') {
            Some((
                format!("control_socket {} is a relative path", quote(s)),
                "give an absolute path, e.g. \"/run/halb/halb.sock\"".to_owned(),
            ))
        } else if s.len() > MAX {
            Some((
                format!("control_socket is {} bytes long", s.len()),
                "use a shorter path: a Unix socket path has at most 107 bytes".to_owned(),
            ))
        } else {
            None
        };
        self.accept(f, "an absolute path of at most 107 bytes", problem, || {
            PathBuf::from(s)
        })
    }

    /// The keys [global] and a service share.
    fn overrides(&mut self, n: &Node, d: &mut Defaults) {
        if let Some(f) = self.field(n, "connect_timeout") {
            let fix = "a connect attempt needs time: use e.g. \"1s\"";
            if let Some(v) = self.duration(&f, Duration::from_millis(1), fix) {
                d.connect_timeout = v;
            }
        }
        if let Some(f) = self.field(n, "connect_attempts") {
            let w = Want {
                short: "an integer",
                expected: "an integer 1..100 (default 3)",
                example: "3",
            };
            let fix = "use at least 1 (one try) and at most 100";
            if let Some(v) = self.int_range(&f, &w, (1, 100), fix) {
                d.connect_attempts = u32::try_from(v).unwrap_or(1);
            }
        }
        if let Some(f) = self.field(n, "idle_timeout") {
            if let Some(v) = self.duration(&f, Duration::ZERO, "") {
                d.idle_timeout = v;
            }
        }
        if let Some(f) = self.field(n, "udp_timeout") {
            let fix = "use at least \"1s\"";
            if let Some(v) = self.duration(&f, Duration::from_secs(1), fix) {
                d.udp_timeout = v;
            }
        }
        if let Some(f) = self.field(n, "max_fails") {
            let w = Want {
                short: "an integer",
                expected: "an integer 0..1000 (default 1; 0: no passive health)",
                example: "1",
            };
            let fix = "use 0 to turn passive health off, or a count up to 1000";
            if let Some(v) = self.int_range(&f, &w, (0, 1000), fix) {
                d.max_fails = u32::try_from(v).unwrap_or(0);
            }
        }
        if let Some(f) = self.field(n, "fail_timeout") {
            let fix = "use at least \"1s\" (or max_fails = 0 for no passive health)";
            if let Some(v) = self.duration(&f, Duration::from_secs(1), fix) {
                d.fail_timeout = v;
            }
        }
        if let Some(f) = self.field(n, "on_down") {
            match self.choice(
                &f,
                "on_down value",
                &["quiescent", "remove"],
                ON_DOWN_SYNONYMS,
            ) {
                Some("remove") => d.on_down = OnDown::Remove,
                Some(_) => d.on_down = OnDown::Quiescent,
                None => {}
            }
        }
    }

    fn service_name(&mut self, f: &Field) -> Option<String> {
        let w = Want {
            short: "a string",
            expected: "a unique name",
            example: "\"web\"",
        };
        let s = self.string(f, &w)?;
        let problem = if s.trim().is_empty() {
            Some((
                "empty service name".to_owned(),
                "give a name, or remove `name` for the default \"<protocol>/<listen>\"".to_owned(),
            ))
        } else if s.chars().any(char::is_control) {
            Some((
                format!("service name {} contains control characters", quote(s)),
                "use printable characters only".to_owned(),
            ))
        } else if s.trim() != s {
            Some((
                format!("service name {} has leading or trailing spaces", quote(s)),
                format!("write name = {}", quote(s.trim())),
            ))
        } else {
            None
        };
        self.accept(
            f,
            "a non-empty name of printable characters",
            problem,
            || s.to_owned(),
        )
    }

    fn service(&mut self, tbl: Tbl, span: Span, index: usize, head: &Head) -> Svc {
        let (d, gcheck, galert) = (&head.defaults, &head.check, &head.alert);
        let before = self.errors.len();
        let unnamed = Node {
            tbl,
            path: format!("virtual_service[{index}]"),
            span: span.clone(),
        };
        let name_field = self.field(&unnamed, "name");
        let name = name_field.as_ref().and_then(|f| self.service_name(f));
        let label = match &name {
            Some(n) => format!("virtual_service {}", quote(n)),
            None => unnamed.path.clone(),
        };
        let node = Node {
            tbl,
            path: label.clone(),
            span: span.clone(),
        };
        self.check_keys(&node, Section::Service);

        let mut vs = VirtualService::new(
            String::new(),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            Protocol::Tcp,
            SchedulerKind::Wlc,
        );

        let listen = match self.field(&node, "listen") {
            Some(f) => self.addr(&f, "\"0.0.0.0:80\"").map(|a| (a, f.span.clone())),
            None if self.field(&node, "fwmark").is_some() => None,
            None => {
                self.push(
                    Problem::new(span.clone(), join(&label, "listen"), "missing `listen`")
                        .expected("listen = \"IP:PORT\"")
                        .fix("add listen = \"0.0.0.0:80\" (all IPv4 addresses) or \"[::]:80\" (all IPv6 addresses)"),
                );
                None
            }
        };
        if let Some((a, _)) = &listen {
            vs.listen = *a;
        }

        let mut protocol_ok = true;
        if let Some(f) = self.field(&node, "protocol") {
            match self.choice(&f, "protocol", &["tcp", "udp", "sctp"], PROTOCOL_SYNONYMS) {
                Some("udp") => vs.protocol = Protocol::Udp,
                Some("sctp") => vs.protocol = Protocol::Sctp,
                Some(_) => vs.protocol = Protocol::Tcp,
                None => protocol_ok = false,
            }
        }

        let mut scheduler_ok = true;
        let sched_field = self.field(&node, "scheduler");
        if let Some(f) = &sched_field {
            let names = SchedulerKind::ALL.map(SchedulerKind::name);
            match self
                .choice(f, "scheduler", &names, SCHEDULER_SYNONYMS)
                .and_then(SchedulerKind::from_name)
            {
                Some(k) => vs.scheduler = k,
                None => scheduler_ok = false,
            }
        }

        if let Some(f) = self.field(&node, "scheduler_flags") {
            if let Some(flags) = self.flags(&f) {
                vs.flags = flags;
                let hashing = matches!(vs.scheduler, SchedulerKind::Sh | SchedulerKind::Mh);
                if scheduler_ok && !hashing && flags != SchedulerFlags::default() {
                    let which = match &sched_field {
                        Some(sf) => format!(
                            "scheduler \"{}\" (line {})",
                            vs.scheduler,
                            self.line(&sf.span)
                        ),
                        None => format!("the default scheduler \"{}\"", vs.scheduler),
                    };
                    self.push(
                        Problem::new(
                            f.span.clone(),
                            f.path.clone(),
                            format!("scheduler_flags do not apply to {which}"),
                        )
                        .expected("scheduler = \"sh\" or \"mh\" (only they hash, and take flags)")
                        .fix("remove scheduler_flags, or set scheduler = \"sh\" (or \"mh\")"),
                    );
                }
            }
        }

        let mut dd = *d;
        self.overrides(&node, &mut dd);
        vs.connect_timeout = dd.connect_timeout;
        vs.connect_attempts = dd.connect_attempts;
        vs.idle_timeout = dd.idle_timeout;
        vs.udp_timeout = dd.udp_timeout;
        vs.max_fails = dd.max_fails;
        vs.fail_timeout = dd.fail_timeout;
        vs.on_down = dd.on_down;
        if let Some(f) = self.field(&node, "udp_max_flows") {
            let w = Want {
                short: "an integer",
                expected: "an integer 1..10000000 (default 10000)",
                example: "10000",
            };
            let fix = "use at least 1 (a service with no flow cannot answer) and at most 10000000";
            if let Some(v) = self.int_range(&f, &w, (1, 10_000_000), fix) {
                vs.udp_max_flows = u32::try_from(v).unwrap_or(halb_table::DEFAULT_UDP_MAX_FLOWS);
            }
        }

        if let Some(f) = self.field(&node, "fallback") {
            if let Some(a) = self.addr(&f, "\"127.0.0.1:9999\"") {
                vs.fallback = Some(a);
                if let Some((l, _)) = &listen {
                    self.same_family(&f, "fallback", a, *l);
                    if a == *l {
                        self.push(
                            Problem::new(f.span.clone(), f.path.clone(), format!("fallback {a} is the service's own listen address"))
                                .expected("another server's address")
                                .fix("connections would loop back into the service: give the address of a real fallback server"),
                        );
                    }
                }
            }
        }

        if let Some(f) = self.field(&node, "proxy_protocol") {
            if let Some(v) =
                self.choice(&f, "proxy_protocol version", &["v1", "v2"], PROXY_SYNONYMS)
            {
                {
                    vs.proxy_protocol = Some(if v == "v1" {
                        ProxyProtocol::V1
                    } else {
                        ProxyProtocol::V2
                    });
                    if protocol_ok && vs.protocol == Protocol::Udp {
                        self.push(
                            Problem::new(f.span.clone(), f.path.clone(), "proxy_protocol on a udp service")
                                .expected("protocol = \"tcp\" for proxy_protocol")
                                .fix("remove proxy_protocol: halb sends the PROXY header on TCP connections only"),
                        );
                    }
                }
            }
        }

        if let Some(f) = self.field(&node, "persistence") {
            vs.persistence = self.persistence(&f);
        }

        let salert = match self.field(&node, "alert") {
            Some(f) => self.alert_table(&f),
            None => alert::Layer::default(),
        };
        let alert = self.resolve_alert(galert, &salert);
        let plane = self.ipvs_service(&node, d, &mut vs, protocol_ok);

        let scheck = match self.field(&node, "check") {
            Some(f) => self.check_table(&f),
            None => check::Layer::default(),
        };
        let mut checks = Vec::new();
        // A firewall-mark service's real servers may have port 0 (each
        // packet keeps its own destination port, as ipvsadm -f … -r IP).
        let fwmark = listen.is_none() && self.field(&node, "fwmark").is_some();
        if let Some(f) = self.field(&node, "real_server") {
            let mut seen: HashMap<SocketAddr, usize> = HashMap::new();
            for (j, tbl, rspan) in self.tables(
                &f,
                "virtual_service.real_server",
                "address = \"192.0.2.10:80\"",
            ) {
                let path = format!("{}[{j}]", f.path);
                if let Some((real, aspan, check)) = self.real(
                    tbl,
                    rspan,
                    path,
                    listen.as_ref().map(|l| l.0),
                    (gcheck, &scheck),
                    (plane, fwmark),
                ) {
                    if let Some(spec) = check {
                        checks.push((real.addr, spec));
                    }
                    if let Some(line) = seen.get(&real.addr) {
                        self.push(
                            Problem::new(aspan.clone(), format!("{}[{j}].address", f.path), format!("duplicate real server {}", real.addr))
                                .expected("each real server once per service")
                                .fix(format!("remove one of the duplicate real servers (the other is at line {line})")),
                        );
                    } else {
                        seen.insert(real.addr, self.line(&aspan));
                    }
                    vs.reals.push(real);
                }
            }
        }

        let key_span = match (&listen, protocol_ok) {
            (Some((_, s)), true) => Some(s.clone()),
            _ => self.fwmark_span(&node, &mut vs),
        };
        let name_known = name.is_some() || key_span.is_some();
        vs.name = name.clone().unwrap_or_else(|| match vs.fwmark {
            Some(m) => format!("fwmark/{m}"),
            None => format!("{}/{}", vs.protocol, vs.listen),
        });
        Svc {
            vs,
            span,
            name_span: name.and(name_field.map(|f| f.span)),
            name_known,
            key_span,
            label,
            checks,
            alert,
            ok: self.errors.len() == before,
        }
    }

    fn same_family(&mut self, f: &Field, what: &str, a: SocketAddr, listen: SocketAddr) {
        if a.is_ipv4() == listen.is_ipv4() {
            return;
        }
        let fam = |x: SocketAddr| if x.is_ipv4() { "IPv4" } else { "IPv6" };
        self.push(
            Problem::new(
                f.span.clone(),
                f.path.clone(),
                format!(
                    "mixed address families: {what} {a} is {}, but the service listens on {} {listen}",
                    fam(a),
                    fam(listen)
                ),
            )
            .expected(format!("an {} address, like listen", fam(listen)))
            .fix(format!(
                "give an {} address, or put it in a separate {} virtual service; halb does not translate between IPv4 and IPv6",
                fam(listen),
                fam(a)
            )),
        );
    }

    fn flags(&mut self, f: &Field) -> Option<SchedulerFlags> {
        let Kind::Array(a) = f.kind else {
            let fix = match f.kind {
                Kind::Str(s) => format!("write an array: scheduler_flags = [{}]", quote(s)),
                _ => "write scheduler_flags = [\"fallback\", \"port\"]".to_owned(),
            };
            let w = Want {
                short: "an array",
                expected: "an array of \"fallback\", \"port\"",
                example: "",
            };
            self.type_error(f, &w, Some(fix));
            return None;
        };
        let mut flags = SchedulerFlags::default();
        let mut ok = true;
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, v) in a.iter().enumerate() {
            let e = self.element(f, i, v);
            match self.choice(&e, "scheduler flag", &["fallback", "port"], FLAG_SYNONYMS) {
                Some(flag) => {
                    if let Some(first) = seen.insert(flag, i) {
                        self.push(
                            Problem::new(
                                e.span.clone(),
                                e.path.clone(),
                                format!("scheduler flag \"{flag}\" is listed twice"),
                            )
                            .expected("each flag at most once")
                            .fix(format!(
                                "remove this one (the first is {}[{first}])",
                                f.name
                            )),
                        );
                        ok = false;
                    }
                    if flag == "fallback" {
                        flags.fallback = true;
                    } else {
                        flags.port = true;
                    }
                }
                None => ok = false,
            }
        }
        ok.then_some(flags)
    }

    fn persistence(&mut self, f: &Field) -> Option<Persistence> {
        let w = Want {
            short: "a table",
            expected: "a [virtual_service.persistence] table",
            example: "",
        };
        let fix = "write a [virtual_service.persistence] table with timeout = \"300s\"".to_owned();
        let node = self.table(f, &w, Some(fix))?;
        self.check_keys(&node, Section::Persistence);
        let mut p = Persistence {
            timeout: Duration::from_secs(300),
            prefix_v4: 32,
            prefix_v6: 128,
        };
        let before = self.errors.len();
        if let Some(t) = self.field(&node, "timeout") {
            let fix = "use at least \"1s\", or remove the persistence table for none";
            if let Some(d) = self.duration(&t, Duration::from_secs(1), fix) {
                if d.subsec_nanos() != 0 {
                    let up = Duration::from_secs(d.as_secs() + 1);
                    self.push(
                        Problem::new(
                            t.span.clone(),
                            t.path.clone(),
                            format!(
                                "persistence timeout {} is not a whole number of seconds",
                                self.raw(&t.span)
                            ),
                        )
                        .expected("whole seconds (IPVS counts persistence in seconds)")
                        .fix(format!(
                            "write timeout = \"{}\"",
                            values::format_duration(up)
                        )),
                    );
                } else {
                    p.timeout = d;
                }
            }
        }
        if let Some(m) = self.field(&node, "netmask") {
            match m.kind {
                Kind::Str(s) => match values::parse_netmask(s) {
                    Ok(n) => p.prefix_v4 = n,
                    Err(d) => self.push_diag(&m, d),
                },
                _ => {
                    let w = Want {
                        short: "a netmask",
                        expected: NETMASK_EXPECTED,
                        example: "\"255.255.255.0\"",
                    };
                    let fix = "use a prefix length 0..32: netmask = 24 is \"255.255.255.0\"";
                    if let Some(n) = self.int_range(&m, &w, (0, 32), fix) {
                        p.prefix_v4 = u8::try_from(n).unwrap_or(32);
                    }
                }
            }
        }
        if let Some(m) = self.field(&node, "prefix_v6") {
            let w = Want {
                short: "an integer",
                expected: "a prefix length 0..128 (default 128)",
                example: "64",
            };
            let fix = "IPv6 prefix lengths range 0..128; 128 is one client per address";
            if let Some(n) = self.int_range(&m, &w, (0, 128), fix) {
                p.prefix_v6 = u8::try_from(n).unwrap_or(128);
            }
        }
        (self.errors.len() == before).then_some(p)
    }

    fn real(
        &mut self,
        tbl: Tbl,
        span: Span,
        path: String,
        listen: Option<SocketAddr>,
        above: (&check::Layer, &check::Layer),
        // The service's data plane, and whether it is a firewall mark's.
        (plane, fwmark): (halb_table::DataPlaneKind, bool),
    ) -> Option<(RealServer, Span, Option<CheckedReal>)> {
        let node = Node { tbl, path, span };
        self.check_keys(&node, Section::Real);
        let before = self.errors.len();
        let rcheck = match self.field(&node, "check") {
            Some(f) => self.check_table(&f),
            None => check::Layer::default(),
        };
        let addr = match self.field(&node, "address") {
            Some(f) => {
                let a = match f.kind {
                    Kind::Str(s) if fwmark => match s.parse::<SocketAddr>() {
                        Ok(a) if a.port() == 0 => Some(a),
                        _ => self.addr(&f, "\"192.0.2.10:80\""),
                    },
                    _ => self.addr(&f, "\"192.0.2.10:80\""),
                };
                if let (Some(a), Some(l)) = (a, listen) {
                    self.same_family(&f, "real server", a, l);
                    if a == l {
                        self.push(
                            Problem::new(f.span.clone(), f.path.clone(), format!("real server {a} is the service's own listen address"))
                                .expected("the address of a server behind the balancer")
                                .fix("connections would loop back into the service: give the real server's own address"),
                        );
                    }
                }
                a.map(|a| (a, f.span))
            }
            None => {
                self.push(
                    Problem::new(
                        node.span.clone(),
                        join(&node.path, "address"),
                        "missing `address`",
                    )
                    .expected("address = \"IP:PORT\"")
                    .fix("add address = \"192.0.2.10:80\" (the real server's IP address and port)"),
                );
                None
            }
        };
        let mut weight = 1;
        if let Some(f) = self.field(&node, "weight") {
            let w = Want {
                short: "an integer",
                expected: "an integer 0..65535 (default 1)",
                example: "1",
            };
            let fix = "weights range 0..65535; 0 makes the real server quiescent";
            if let Some(v) = self.int_range(&f, &w, (0, 65535), fix) {
                weight = u32::try_from(v).unwrap_or(1);
            }
        }
        let threshold = |cx: &mut Self, key: &str, example: &str| -> Option<(u32, Span)> {
            let f = cx.field(&node, key)?;
            let w = Want {
                short: "an integer",
                expected: "a connection count 0..4294967295 (0: none)",
                example,
            };
            let v = cx.int_range(
                &f,
                &w,
                (0, i64::from(u32::MAX)),
                "use a count of connections, 0..4294967295; 0 means none",
            )?;
            Some((u32::try_from(v).unwrap_or(0), f.span))
        };
        let upper = threshold(self, "upper_threshold", "100");
        let lower = threshold(self, "lower_threshold", "50");
        if let Some((lo, lspan)) = &lower {
            let up = upper.as_ref().map_or(0, |u| u.0);
            if *lo > 0 && up == 0 {
                self.push(
                    Problem::new(
                        lspan.clone(),
                        join(&node.path, "lower_threshold"),
                        format!("lower_threshold {lo} without an upper_threshold"),
                    )
                    .expected("lower_threshold only with an upper_threshold above it")
                    .fix("set upper_threshold, or remove lower_threshold"),
                );
            } else if *lo > 0 && *lo >= up {
                self.push(
                    Problem::new(
                        lspan.clone(),
                        join(&node.path, "lower_threshold"),
                        format!("lower_threshold {lo} is not below upper_threshold {up}"),
                    )
                    .expected(format!(
                        "lower_threshold < upper_threshold ({up}), or 0 for three quarters of it"
                    ))
                    .fix(format!(
                        "lower it below {up}, or set 0 to use {}",
                        u64::from(up) * 3 / 4
                    )),
                );
            }
        }
        let (forward, tunnel_type, tunnel_port, tunnel_checksum) = self.ipvs_real(&node, plane);
        let (addr, aspan) = addr?;
        // Resolved even when this table has other problems, so that every
        // problem of the merged check is reported in this pass too.
        // As ldirectord: with no check type, the virtual service's port
        // picks the probe (80 http, 3306 mysql, ...); a port that picks
        // none (8080, a firewall mark's 0) leaves it to the real server's.
        let check = self.resolve_check(above.0, above.1, &rcheck, addr, listen);
        if let Some(c) = &check {
            let portless = matches!(
                c.probe,
                halb_health::ProbeSpec::Icmp | halb_health::ProbeSpec::External(_)
            );
            if addr.port() == 0 && c.target.port() == 0 && !portless {
                self.push(
                    Problem::new(aspan.clone(), join(&node.path, "address"), format!("real server {addr} has port 0: its check has no port to probe"))
                        .expected("a check port for a real server of port 0")
                        .fix("add check = { port = 80 } (the port the check probes) to this real server or its service"),
                );
            }
        }
        // This real server's own on_down (keepalived's inhibit_on_failure
        // on one real server): only a checked real server goes down.
        let mut on_down = None;
        if let Some(f) = self.field(&node, "on_down") {
            match self.choice(
                &f,
                "on_down value",
                &["quiescent", "remove"],
                ON_DOWN_SYNONYMS,
            ) {
                Some("remove") => on_down = Some(OnDown::Remove),
                Some(_) => on_down = Some(OnDown::Quiescent),
                None => {}
            }
            if check.is_none() {
                self.push(
                    Problem::new(f.span.clone(), f.path.clone(), "on_down on a real server without a health check")
                        .expected("on_down on a real server that has a check (its own, its service's or [global.check])")
                        .fix("add a check to this real server or its service, or remove on_down (an unchecked real server is never down)"),
                );
            }
        }
        if self.errors.len() != before {
            return None;
        }
        let real = RealServer {
            addr,
            weight,
            upper_threshold: upper.map_or(0, |u| u.0),
            lower_threshold: lower.map_or(0, |l| l.0),
            forward,
            tunnel_type,
            tunnel_port,
            tunnel_checksum,
        };
        Some((real, aspan, check.map(|c| (c, on_down))))
    }

    /// Checks across services: unique names, unique protocol + listen.
    fn cross_check(&mut self, svcs: &[Svc]) {
        let mut by_key: HashMap<ServiceKey, (usize, &str)> = HashMap::new();
        for s in svcs {
            let Some(span) = &s.key_span else { continue };
            let key = s.vs.key();
            match by_key.get(&key) {
                Some((line, label)) => self.push(
                    Problem::new(span.clone(), join(&s.label, "listen"), format!("duplicate listen address: {key} is already used by {label} (line {line})"))
                        .expected("a protocol and listen address no other virtual service has")
                        .fix("remove one of the two services, or change this one's listen address or protocol"),
                ),
                None => {
                    by_key.insert(key, (self.line(&s.span), &s.label));
                }
            }
        }
        let mut by_name: HashMap<&str, (usize, bool)> = HashMap::new();
        for s in svcs.iter().filter(|s| s.name_known) {
            let explicit = s.name_span.is_some();
            match by_name.get(s.vs.name.as_str()) {
                Some((line, first_explicit)) if explicit || *first_explicit => {
                    let (span, message, fix) = match &s.name_span {
                        Some(span) => (
                            span.clone(),
                            format!("duplicate service name {}", quote(&s.vs.name)),
                            format!(
                                "rename one of them (the other {} is at line {line})",
                                quote(&s.vs.name)
                            ),
                        ),
                        None => (
                            s.span.clone(),
                            format!("this service's default name {} is taken", quote(&s.vs.name)),
                            format!(
                                "give this service a name = \"…\" (the other {} is at line {line})",
                                quote(&s.vs.name)
                            ),
                        ),
                    };
                    self.push(
                        Problem::new(span, join(&s.label, "name"), message)
                            .expected("a name no other virtual service has")
                            .fix(fix),
                    );
                }
                Some(_) => {}
                None => {
                    by_name.insert(&s.vs.name, (self.line(&s.span), explicit));
                }
            }
        }
    }
}
