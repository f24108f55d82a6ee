//! `[[vrrp_instance]]` and `[[vrrp_sync_group]]`: director failover
//! (keepalived's key names where sensible). Each table is checked on its
//! own, then across instances (unique names, one VRID per interface and
//! family, sync group members, tracked services).

use super::{Cx, Field, Kind, Node, Span, Tbl, Want};
use crate::diag::Problem;
use crate::suggest::closest;
use crate::values::quote;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

pub(super) const INSTANCE_KEYS: &[&str] = &[
    "name",
    "interface",
    "virtual_router_id",
    "version",
    "priority",
    "advert_interval",
    "preempt",
    "preempt_delay",
    "accept",
    "virtual_ipaddress",
    "unicast_source",
    "unicast_peers",
    "paths",
    "auth",
    "garp",
    "track_interface",
    "track_service",
    "track_ping",
    "track_script",
    "vip_on_loopback_when_backup",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify_stop",
    "notify",
];
const GROUP_KEYS: &[&str] = &[
    "name",
    "instances",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify",
];
const VIP_KEYS: &[&str] = &["address", "interface", "label"];
const PATH_KEYS: &[&str] = &["interface", "unicast_source", "unicast_peer"];
const AUTH_KEYS: &[&str] = &["type", "password", "key", "replay_window"];
const GARP_KEYS: &[&str] = &["count", "interval", "delay", "refresh"];
const TRACK_SERVICE_KEYS: &[&str] = &["service", "weight"];
const TRACK_PING_KEYS: &[&str] = &["hosts", "interval", "timeout", "fall", "rise"];
const TRACK_SCRIPT_KEYS: &[&str] = &[
    "name", "command", "interval", "timeout", "rise", "fall", "weight",
];

/// keepalived names a user may bring along, and where they went.
const INSTANCE_HINTS: &[(&str, &str)] = &[
    ("state", "there is no `state`: the election decides; give the preferred director the higher `priority`"),
    ("nopreempt", "write preempt = false"),
    ("advert_int", "did you mean `advert_interval`? advert_interval = \"1s\""),
    ("vrid", "did you mean `virtual_router_id`?"),
    ("authentication", "did you mean `auth`? auth = { type = \"pass\", password = \"secret\" }"),
    ("auth_type", "write auth = { type = \"pass\", password = \"secret\" }"),
    ("auth_pass", "write auth = { type = \"pass\", password = \"secret\" }"),
    ("virtual_ipaddresses", "did you mean `virtual_ipaddress`?"),
    ("vip", "did you mean `virtual_ipaddress`?"),
    ("vips", "did you mean `virtual_ipaddress`?"),
    ("unicast_src_ip", "did you mean `unicast_source`?"),
    ("unicast_peer", "did you mean `unicast_peers`?"),
    ("garp_master_repeat", "write garp = { count = 5 }"),
    ("garp_master_refresh", "write garp = { refresh = \"60s\" }"),
    ("garp_master_delay", "write garp = { delay = \"5s\" }"),
    ("accept_mode", "did you mean `accept`?"),
    ("no_accept", "write accept = false"),
    ("track_interfaces", "did you mean `track_interface`?"),
    ("track_scripts", "did you mean `track_script`? write [[vrrp_instance.track_script]] tables"),
    ("dev", "did you mean `interface`?"),
    ("extra_paths", "did you mean `paths`? paths = [{ interface = \"eth1\", unicast_peer = \"198.51.100.2\" }]"),
    ("bcast", "heartbeat's media are `paths`: paths = [{ interface = \"eth1\", unicast_peer = \"198.51.100.2\" }]"),
    ("ucast", "heartbeat's media are `paths`: paths = [{ interface = \"eth1\", unicast_peer = \"198.51.100.2\" }]"),
    ("links", "Corosync's links are `paths`: paths = [{ interface = \"eth1\", unicast_peer = \"198.51.100.2\" }]"),
];

/// A virtual address of an instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VrrpVip {
    /// The address.
    pub address: IpAddr,
    /// Prefix length (/32 or /128 when not written).
    pub prefix_len: u8,
    /// Interface, when not the instance's.
    pub interface: Option<String>,
    /// IPv4 label (`eth0:vip`).
    pub label: Option<String>,
}

/// Authentication of adverts.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VrrpAuth {
    /// None (VRRPv3, or v2 without auth).
    #[default]
    None,
    /// VRRPv2 simple text password (RFC 3768), at most 8 bytes: weak.
    Pass(#[serde(serialize_with = "secret")] String),
    /// halb-to-halb HMAC-SHA256 with anti-replay; not keepalived
    /// compatible.
    HmacSha256 {
        /// The shared key.
        #[serde(serialize_with = "secret")]
        key: Vec<u8>,
        /// How many sequence numbers behind the highest seen are still
        /// accepted (reordering); 0: strictly increasing.
        replay_window: u32,
    },
}

/// Gratuitous ARP / unsolicited NA on becoming master.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VrrpGarp {
    /// Messages per address.
    pub count: u32,
    /// Between messages.
    pub interval: Duration,
    /// The second burst, this long after becoming master (keepalived's
    /// `garp_master_delay`, default 5 s); `None`: no second burst.
    pub delay: Option<Duration>,
    /// Refresh period while master; `None` off.
    pub refresh: Option<Duration>,
}

/// `track_service`: all real servers of `service` down shifts the
/// priority by `weight`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrackService {
    /// Virtual service name.
    pub service: String,
    /// Priority change (negative lowers), -254..=254; 0: Fault.
    pub weight: i32,
}

/// `track_ping`: ping nodes (heartbeat's ipfail).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrackPing {
    /// Hosts; unreachable means none answers.
    pub hosts: Vec<IpAddr>,
    /// Between rounds.
    pub interval: Duration,
    /// Per echo.
    pub timeout: Duration,
    /// Failed rounds before Fault.
    pub fall: u32,
    /// Good rounds before leaving Fault.
    pub rise: u32,
}

/// `[[vrrp_instance.track_script]]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrackScript {
    /// Name (logs).
    pub name: String,
    /// Program and arguments (no shell).
    pub command: Vec<String>,
    /// Between runs.
    pub interval: Duration,
    /// Kill after.
    pub timeout: Duration,
    /// Successes to count as up.
    pub rise: u32,
    /// Failures to count as down.
    pub fall: u32,
    /// Priority change while down; 0: Fault.
    pub weight: i32,
}

/// Notify hooks (argv, no shell).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Notify {
    /// On Master.
    pub master: Option<Vec<String>>,
    /// On Backup.
    pub backup: Option<Vec<String>>,
    /// On Fault.
    pub fault: Option<Vec<String>>,
    /// On stop.
    pub stop: Option<Vec<String>>,
    /// Every change, with `INSTANCE|GROUP name STATE priority`.
    pub any: Option<Vec<String>>,
}

/// One `[[vrrp_instance]]`, every default applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VrrpInstance {
    /// Unique name.
    pub name: String,
    /// Interface.
    pub interface: String,
    /// 1..=255.
    pub virtual_router_id: u8,
    /// 2 or 3.
    pub version: u8,
    /// 1..=255.
    pub priority: u8,
    /// Advert interval.
    pub advert_interval: Duration,
    /// Preempt.
    pub preempt: bool,
    /// Preempt delay.
    pub preempt_delay: Duration,
    /// Accept_Mode: a non-owner master accepts packets to its VIPs
    /// (default true, as keepalived without `vrrp_strict`); false: they are
    /// dropped (nftables, see halb-vrrp-net's `accept`).
    pub accept: bool,
    /// VIPs (one family).
    pub virtual_ipaddress: Vec<VrrpVip>,
    /// Unicast source.
    pub unicast_source: Option<IpAddr>,
    /// Unicast peers (empty: multicast).
    pub unicast_peers: Vec<IpAddr>,
    /// Redundant heartbeat paths besides `interface` (halb to halb, HMAC
    /// auth): the adverts go over each; the backup takes over only when
    /// all were silent for the master-down interval.
    pub paths: Vec<VrrpPath>,
    /// Authentication.
    pub auth: VrrpAuth,
    /// GARP.
    pub garp: VrrpGarp,
    /// Tracked links.
    pub track_interface: Vec<String>,
    /// Tracked services.
    pub track_service: Vec<TrackService>,
    /// Ping nodes.
    pub track_ping: Option<TrackPing>,
    /// Scripts.
    pub track_script: Vec<TrackScript>,
    /// Director as real server.
    pub vip_on_loopback_when_backup: bool,
    /// Hooks.
    pub notify: Notify,
}

/// One more path of an instance (`paths = [{ … }]`): a link to the peer
/// director besides the instance's interface, as heartbeat's second
/// `bcast`/`ucast` medium or Corosync's second link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VrrpPath {
    /// The link (`eth1`, a crossover cable or a dedicated switch).
    pub interface: String,
    /// Our address on it; `None`: the interface's first address of the
    /// VIPs' family.
    pub unicast_source: Option<IpAddr>,
    /// The peer director's address on it.
    pub unicast_peer: IpAddr,
}

/// `[[vrrp_sync_group]]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VrrpSyncGroup {
    /// Name.
    pub name: String,
    /// Member instances.
    pub instances: Vec<String>,
    /// Hooks (`notify` gets `GROUP name STATE`).
    pub notify: Notify,
}

/// An instance as parsed, with the places cross-checks point at.
pub(super) struct Inst {
    pub(super) vi: VrrpInstance,
    name_span: Option<Span>,
    vrid_span: Option<Span>,
    label: String,
    track_service_spans: Vec<Span>,
    pub(super) ok: bool,
}

fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c == ':' || c.is_control())
}

const IFNAME_EXPECTED: &str = "an interface name of 1..15 characters without '/', ':' or spaces";

impl Cx<'_> {
    pub(super) fn vrrp_keys(
        &mut self,
        n: &Node,
        allowed: &[&str],
        what: &str,
        hints: &[(&str, &str)],
    ) {
        for name in n.tbl.names() {
            if allowed.contains(&name) {
                continue;
            }
            let Some(f) = self.field(n, name) else {
                continue;
            };
            let fix = hints
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, h)| (*h).to_owned())
                .or_else(|| closest(name, allowed).map(|c| format!("did you mean `{c}`?")))
                .unwrap_or_else(|| format!("remove `{name}`"));
            self.push(
                Problem::new(
                    f.key_span.clone(),
                    f.path.clone(),
                    format!("unknown key `{name}`"),
                )
                .expected(format!("{what}: {}", allowed.join(", ")))
                .fix(fix),
            );
        }
    }

    pub(super) fn vrrp_bool(&mut self, n: &Node, key: &str, default: bool) -> bool {
        let Some(f) = self.field(n, key) else {
            return default;
        };
        if let Kind::Bool(b) = f.kind {
            return b;
        }
        let fix = match f.kind {
            Kind::Str("true" | "yes" | "on") => Some(format!("remove the quotes: {key} = true")),
            Kind::Str("false" | "no" | "off") => Some(format!("remove the quotes: {key} = false")),
            _ => None,
        };
        let w = Want {
            short: "a boolean",
            expected: "true or false",
            example: "true",
        };
        self.type_error(&f, &w, fix);
        default
    }

    pub(super) fn vrrp_str<'a>(
        &mut self,
        f: &Field<'a>,
        expected: &str,
        example: &str,
    ) -> Option<&'a str> {
        let w = Want {
            short: "a string",
            expected,
            example,
        };
        self.string(f, &w)
    }

    fn ifname(&mut self, f: &Field) -> Option<String> {
        let s = self.vrrp_str(f, IFNAME_EXPECTED, "\"eth0\"")?;
        let problem = (!valid_ifname(s)).then(|| {
            (
                format!("{} is not an interface name", quote(s)),
                "give the interface as `ip link` shows it, e.g. \"eth0\"".to_owned(),
            )
        });
        self.accept(f, IFNAME_EXPECTED, problem, || s.to_owned())
    }

    fn ip(&mut self, f: &Field, example: &str) -> Option<IpAddr> {
        let s = self.vrrp_str(f, "an IP address", example)?;
        match s.trim().parse::<IpAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                let fix = if s.contains('/') {
                    format!(
                        "write the address without a prefix: {}",
                        quote(s.split('/').next().unwrap_or(""))
                    )
                } else if s.parse::<std::net::SocketAddr>().is_ok() {
                    "write the address without a port".to_owned()
                } else {
                    format!("write an IPv4 or IPv6 address, e.g. {example}")
                };
                self.push(
                    Problem::new(
                        f.span.clone(),
                        f.path.clone(),
                        format!("{} is not an IP address", quote(s)),
                    )
                    .expected("an IPv4 or IPv6 address")
                    .fix(fix),
                );
                None
            }
        }
    }

    fn ip_list(&mut self, f: &Field, example: &str) -> Vec<IpAddr> {
        let Kind::Array(a) = f.kind else {
            let fix = match f.kind {
                Kind::Str(s) => Some(format!("write an array: {} = [{}]", f.name, quote(s))),
                _ => None,
            };
            let ex = format!("[{example}]");
            let w = Want {
                short: "an array",
                expected: "an array of IP addresses",
                example: &ex,
            };
            self.type_error(f, &w, fix);
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, v) in a.iter().enumerate() {
            let e = self.element(f, i, v);
            if let Some(x) = self.ip(&e, example) {
                out.push(x);
            }
        }
        out
    }

    fn str_list(&mut self, f: &Field, expected: &str, example: &str) -> Vec<(String, Span)> {
        let Kind::Array(a) = f.kind else {
            let fix = match f.kind {
                Kind::Str(s) => Some(format!("write an array: {} = [{}]", f.name, quote(s))),
                _ => None,
            };
            let ex = format!("[{example}]");
            let w = Want {
                short: "an array",
                expected,
                example: &ex,
            };
            self.type_error(f, &w, fix);
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, v) in a.iter().enumerate() {
            let e = self.element(f, i, v);
            if let Some(s) = self.vrrp_str(&e, expected, example) {
                out.push((s.to_owned(), e.span.clone()));
            }
        }
        out
    }

    /// A hook or script: a string split on spaces (no shell), or an array.
    fn argv(&mut self, f: &Field) -> Option<Vec<String>> {
        const EXPECTED: &str =
            "a program and its arguments: a string split on spaces (no shell is used) or an array";
        let words: Vec<String> = match f.kind {
            Kind::Str(s) => s.split_whitespace().map(str::to_owned).collect(),
            Kind::Array(_) => self
                .str_list(f, EXPECTED, "\"/etc/halb/notify.sh\"")
                .into_iter()
                .map(|(s, _)| s)
                .collect(),
            _ => {
                let w = Want {
                    short: "a command",
                    expected: EXPECTED,
                    example: "\"/etc/halb/notify.sh master\"",
                };
                self.type_error(f, &w, None);
                return None;
            }
        };
        let problem = match words.first() {
            None => Some((
                format!("{} is empty", f.name),
                format!("give a program, e.g. {} = \"/etc/halb/notify.sh\"", f.name),
            )),
            Some(p) if p.contains('\0') => Some((
                "NUL character in the command".to_owned(),
                "remove the \\u0000".to_owned(),
            )),
            _ => None,
        };
        self.accept(f, EXPECTED, problem, || words)
    }

    pub(super) fn small_int(
        &mut self,
        f: &Field,
        range: (i64, i64),
        expected: &str,
        example: &str,
        fix: &str,
    ) -> Option<i64> {
        let w = Want {
            short: "an integer",
            expected,
            example,
        };
        self.int_range(f, &w, range, fix)
    }

    fn notify(&mut self, n: &Node, with_stop: bool) -> Notify {
        let mut out = Notify::default();
        let keys: &[&str] = if with_stop {
            &[
                "notify_master",
                "notify_backup",
                "notify_fault",
                "notify_stop",
                "notify",
            ]
        } else {
            &["notify_master", "notify_backup", "notify_fault", "notify"]
        };
        for k in keys {
            if let Some(f) = self.field(n, k) {
                let v = self.argv(&f);
                match *k {
                    "notify_master" => out.master = v,
                    "notify_backup" => out.backup = v,
                    "notify_fault" => out.fault = v,
                    "notify_stop" => out.stop = v,
                    _ => out.any = v,
                }
            }
        }
        out
    }

    fn vip(&mut self, f: &Field) -> Option<VrrpVip> {
        const EXPECTED: &str = "an address with an optional prefix (\"192.0.2.100/24\"), or { address = \"192.0.2.100/24\", interface = \"eth1\", label = \"eth0:vip\" }";
        let (addr_field, iface, label) = match f.kind {
            Kind::Str(_) => (Some(self.element_like(f)), None, None),
            Kind::Inline(t) => {
                let n = Node {
                    tbl: Tbl::Inline(t),
                    path: f.path.clone(),
                    span: f.span.clone(),
                };
                self.vrrp_keys(
                    &n,
                    VIP_KEYS,
                    "a virtual address key",
                    &[("dev", "did you mean `interface`?")],
                );
                let iface = self.field(&n, "interface").and_then(|x| self.ifname(&x));
                let label = match self.field(&n, "label") {
                    Some(x) => {
                        let s = self.vrrp_str(
                            &x,
                            "an address label of at most 15 bytes",
                            "\"eth0:vip\"",
                        )?;
                        let problem = (s.is_empty() || s.len() > 15).then(|| {
                            (
                                format!("label {} is not 1..15 bytes", quote(s)),
                                "use a short label such as \"eth0:vip\"".to_owned(),
                            )
                        });
                        self.accept(&x, "an address label of 1..15 bytes", problem, || {
                            s.to_owned()
                        })
                    }
                    None => None,
                };
                let a = self.field(&n, "address");
                if a.is_none() {
                    self.push(
                        Problem::new(
                            f.span.clone(),
                            f.path.clone(),
                            "virtual address without `address`",
                        )
                        .expected(EXPECTED)
                        .fix("add address = \"192.0.2.100/24\""),
                    );
                }
                (a, iface, label)
            }
            _ => {
                let w = Want {
                    short: "a virtual address",
                    expected: EXPECTED,
                    example: "\"192.0.2.100/24\"",
                };
                self.type_error(f, &w, None);
                return None;
            }
        };
        let af = addr_field?;
        let s = self.vrrp_str(&af, EXPECTED, "\"192.0.2.100/24\"")?;
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let Ok(address) = a.trim().parse::<IpAddr>() else {
            self.push(
                Problem::new(
                    af.span.clone(),
                    af.path.clone(),
                    format!("{} is not an IP address", quote(s)),
                )
                .expected(EXPECTED)
                .fix("write the VIP as \"192.0.2.100/24\" (or \"2001:db8::100/64\")"),
            );
            return None;
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix_len = match p {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    self.push(
                        Problem::new(
                            af.span.clone(),
                            af.path.clone(),
                            format!("prefix /{p} is not valid for {address}"),
                        )
                        .expected(format!("a prefix length 0..{max}"))
                        .fix(format!(
                            "write e.g. \"{address}/{}\"",
                            if max == 32 { 24 } else { 64 }
                        )),
                    );
                    return None;
                }
            },
        };
        if address.is_unspecified() || address.is_multicast() || address.is_loopback() {
            self.push(
                Problem::new(
                    af.span.clone(),
                    af.path.clone(),
                    format!("{address} cannot be a virtual address"),
                )
                .expected("a unicast address")
                .fix("use the address clients connect to, e.g. \"192.0.2.100/24\""),
            );
            return None;
        }
        if label.is_some() && address.is_ipv6() {
            self.push(
                Problem::new(
                    f.span.clone(),
                    f.path.clone(),
                    "IPv6 addresses have no label",
                )
                .expected("`label` only with an IPv4 address")
                .fix("remove `label`"),
            );
            return None;
        }
        Some(VrrpVip {
            address,
            prefix_len,
            interface: iface,
            label,
        })
    }

    fn element_like<'a>(&self, f: &Field<'a>) -> Field<'a> {
        Field {
            name: f.name,
            kind: f.kind,
            path: f.path.clone(),
            key_span: f.key_span.clone(),
            span: f.span.clone(),
        }
    }

    fn interval(&mut self, f: &Field, min: Duration, fix: &str) -> Option<Duration> {
        self.duration(f, min, fix)
    }

    fn auth(&mut self, f: &Field, version: u8) -> VrrpAuth {
        const EXPECTED: &str = "{ type = \"pass\", password = \"…\" } (VRRPv2) or { type = \"hmac-sha256\", key = \"…\" } (halb to halb)";
        let tbl = match f.kind {
            Kind::Inline(t) => Tbl::Inline(t),
            Kind::Table(t) => Tbl::Std(t),
            _ => {
                let w = Want {
                    short: "a table",
                    expected: EXPECTED,
                    example: "{ type = \"pass\", password = \"secret\" }",
                };
                self.type_error(f, &w, None);
                return VrrpAuth::None;
            }
        };
        let n = Node {
            tbl,
            path: f.path.clone(),
            span: f.span.clone(),
        };
        self.vrrp_keys(
            &n,
            AUTH_KEYS,
            "an auth key",
            &[
                ("auth_pass", "did you mean `password`?"),
                (
                    "secret",
                    "did you mean `password` (pass) or `key` (hmac-sha256)?",
                ),
            ],
        );
        let Some(tf) = self.field(&n, "type") else {
            self.push(
                Problem::new(f.span.clone(), f.path.clone(), "auth without `type`")
                    .expected(EXPECTED)
                    .fix("add type = \"pass\" or type = \"hmac-sha256\""),
            );
            return VrrpAuth::None;
        };
        let ty = self.choice(
            &tf,
            "auth type",
            &["pass", "hmac-sha256", "none"],
            &[
                ("PASS", "pass"),
                ("password", "pass"),
                ("hmac", "hmac-sha256"),
                ("ah", "hmac-sha256"),
            ],
        );
        match ty {
            Some("none") => VrrpAuth::None,
            Some("pass") => {
                if version == 3 {
                    self.push(
                        Problem::new(tf.span.clone(), tf.path.clone(), "VRRPv3 has no password authentication (RFC 5798 §9)")
                            .expected("type = \"pass\" only with version = 2")
                            .fix("remove `auth`, set version = 2 (keepalived's auth_type PASS), or use type = \"hmac-sha256\" between halb directors"),
                    );
                }
                let Some(pf) = self.field(&n, "password") else {
                    self.push(
                        Problem::new(
                            f.span.clone(),
                            f.path.clone(),
                            "pass auth without `password`",
                        )
                        .expected("password = \"…\", 1..8 bytes")
                        .fix("add password = \"secret\""),
                    );
                    return VrrpAuth::None;
                };
                let Some(p) = self.vrrp_str(&pf, "a password of 1..8 bytes", "\"secret\"") else {
                    return VrrpAuth::None;
                };
                let problem = (p.is_empty() || p.len() > 8).then(|| {
                    (
                        format!("password is {} bytes", p.len()),
                        "VRRPv2 carries at most 8 bytes (keepalived cuts longer ones): use 1..8 bytes, the same on every director".to_owned(),
                    )
                });
                self.accept(&pf, "a password of 1..8 bytes", problem, || {
                    VrrpAuth::Pass(p.to_owned())
                })
                .unwrap_or_default()
            }
            Some(_) => {
                let Some(kf) = self.field(&n, "key") else {
                    self.push(
                        Problem::new(f.span.clone(), f.path.clone(), "hmac-sha256 auth without `key`")
                            .expected("key = 64 hex digits, or a passphrase of at least 16 bytes")
                            .fix("add key = \"…\" (e.g. the output of `openssl rand -hex 32`), the same on every director"),
                    );
                    return VrrpAuth::None;
                };
                let Some(k) =
                    self.vrrp_str(&kf, "64 hex digits or a passphrase of 16+ bytes", "\"…\"")
                else {
                    return VrrpAuth::None;
                };
                let key = crate::values::key_bytes(k);
                let problem = (key.len() < 16).then(|| {
                    (
                        format!("key is only {} bytes", key.len()),
                        "use 64 hex digits (`openssl rand -hex 32`) or a passphrase of at least 16 bytes".to_owned(),
                    )
                });
                let key = self.accept(
                    &kf,
                    "64 hex digits or a passphrase of 16+ bytes",
                    problem,
                    || key,
                );
                let replay_window = match self.field(&n, "replay_window") {
                    Some(rf) => self
                        .small_int(
                            &rf,
                            (0, 64),
                            "an integer 0..64 (default 0)",
                            "0",
                            "use 0 (strictly increasing) up to 64",
                        )
                        .map_or(0, |v| v as u32),
                    None => 0,
                };
                match key {
                    Some(key) => VrrpAuth::HmacSha256 { key, replay_window },
                    None => VrrpAuth::None,
                }
            }
            None => VrrpAuth::None,
        }
    }

    fn sub_table<'a>(&mut self, f: &Field<'a>, expected: &str, example: &str) -> Option<Node<'a>> {
        let w = Want {
            short: "a table",
            expected,
            example,
        };
        self.table(f, &w, None)
    }

    pub(super) fn vrrp_instance(&mut self, tbl: Tbl, span: Span, i: usize) -> Inst {
        let n0 = Node {
            tbl,
            path: format!("vrrp_instance[{i}]"),
            span: span.clone(),
        };
        let mut ok = true;
        let (name, name_span) = match self.field(&n0, "name") {
            Some(f) => {
                let s = self.vrrp_str(&f, "a unique name", "\"VI_1\"");
                let good =
                    s.filter(|s| !s.trim().is_empty() && !s.chars().any(char::is_whitespace));
                if s.is_some() && good.is_none() {
                    self.push(
                        Problem::new(
                            f.span.clone(),
                            f.path.clone(),
                            "instance name is empty or has spaces",
                        )
                        .expected(
                            "a unique name without spaces (notify scripts get it as one argument)",
                        )
                        .fix("write name = \"VI_1\""),
                    );
                }
                (good.map(str::to_owned), Some(f.span.clone()))
            }
            None => {
                self.push(
                    Problem::new(
                        span.clone(),
                        n0.path.clone(),
                        "vrrp_instance without `name`",
                    )
                    .expected("name = \"VI_1\": a unique name (logs, notify scripts, sync groups)")
                    .fix("add name = \"VI_1\""),
                );
                (None, None)
            }
        };
        let label = match &name {
            Some(nm) => format!("vrrp_instance {}", quote(nm)),
            None => n0.path.clone(),
        };
        let n = Node {
            tbl,
            path: label.clone(),
            span: span.clone(),
        };
        self.vrrp_keys(&n, INSTANCE_KEYS, "a vrrp_instance key", INSTANCE_HINTS);
        let interface = match self.field(&n, "interface") {
            Some(f) => self.ifname(&f),
            None => {
                self.push(
                    Problem::new(
                        span.clone(),
                        label.clone(),
                        "vrrp_instance without `interface`",
                    )
                    .expected("interface = \"eth0\": where adverts go and VIPs are added")
                    .fix("add interface = \"eth0\""),
                );
                None
            }
        };
        let (vrid, vrid_span) = match self.field(&n, "virtual_router_id") {
            Some(f) => (
                self.small_int(&f, (1, 255), "an integer 1..255", "51", "use a virtual router id 1..255, the same on every director of the pair and unique on the LAN")
                    .map(|v| v as u8),
                Some(f.span.clone()),
            ),
            None => {
                self.push(
                    Problem::new(span.clone(), label.clone(), "vrrp_instance without `virtual_router_id`")
                        .expected("virtual_router_id = 1..255, the same on both directors")
                        .fix("add virtual_router_id = 51"),
                );
                (None, None)
            }
        };
        let version = match self.field(&n, "version") {
            Some(f) => self
                .small_int(
                    &f,
                    (2, 3),
                    "2 or 3 (default 3)",
                    "3",
                    "use 3 (RFC 5798), or 2 to speak to an old VRRPv2 peer",
                )
                .map_or(3, |v| v as u8),
            None => 3,
        };
        let priority = match self.field(&n, "priority") {
            Some(f) => self
                .small_int(
                    &f,
                    (1, 255),
                    "an integer 1..255 (default 100; 255: address owner)",
                    "100",
                    "use 1..254 (255 only if the VIPs are this director's own addresses)",
                )
                .map(|v| v as u8),
            None => Some(100),
        };
        let advert_interval = match self.field(&n, "advert_interval") {
            Some(f) => match self.interval(
                &f,
                Duration::from_millis(10),
                "VRRPv3 goes down to \"10ms\"",
            ) {
                Some(d) => {
                    let ms = d.as_millis();
                    let problem = if version == 2
                        && (ms % 1000 != 0 || !(1000..=255_000).contains(&ms))
                    {
                        Some((
                            format!("advert_interval {} with version = 2", self.raw(&f.span)),
                            if ms < 1000 {
                                "VRRPv2 counts whole seconds (1s..255s): use \"1s\", or version = 3 for sub-second adverts".to_owned()
                            } else {
                                format!(
                                    "VRRPv2 counts whole seconds: use \"{}s\"",
                                    (ms / 1000).clamp(1, 255)
                                )
                            },
                        ))
                    } else if version == 3
                        && (ms % 10 != 0 || d.subsec_nanos() % 1_000_000 != 0 || ms > 40_950)
                    {
                        Some((
                            format!("advert_interval {} is not a multiple of 10ms up to 40950ms", self.raw(&f.span)),
                            "VRRPv3 counts centiseconds: use e.g. \"100ms\" or \"1s\" (at most \"40950ms\")".to_owned(),
                        ))
                    } else {
                        None
                    };
                    self.accept(
                        &f,
                        "v3: 10ms..40950ms in 10ms steps; v2: 1s..255s whole seconds",
                        problem,
                        || d,
                    )
                }
                None => None,
            },
            None => Some(Duration::from_secs(1)),
        };
        let preempt = self.vrrp_bool(&n, "preempt", true);
        let preempt_delay = match self.field(&n, "preempt_delay") {
            Some(f) => self
                .interval(&f, Duration::ZERO, "")
                .unwrap_or(Duration::ZERO),
            None => Duration::ZERO,
        };
        let accept = self.vrrp_bool(&n, "accept", true);
        let mut vips = Vec::new();
        match self.field(&n, "virtual_ipaddress") {
            Some(f) => match f.kind {
                Kind::Array(a) => {
                    for (j, v) in a.iter().enumerate() {
                        let e = self.element(&f, j, v);
                        match self.vip(&e) {
                            Some(x) => vips.push((x, e.span.clone(), e.path.clone())),
                            None => ok = false,
                        }
                    }
                    if a.is_empty() {
                        self.push(
                            Problem::new(f.span.clone(), f.path.clone(), "no virtual address")
                                .expected("at least one address")
                                .fix("write virtual_ipaddress = [\"192.0.2.100/24\"]"),
                        );
                        ok = false;
                    }
                }
                Kind::Str(s) => {
                    let w = Want {
                        short: "an array",
                        expected: "an array of virtual addresses",
                        example: "",
                    };
                    self.type_error(
                        &f,
                        &w,
                        Some(format!(
                            "write an array: virtual_ipaddress = [{}]",
                            quote(s)
                        )),
                    );
                    ok = false;
                }
                _ => {
                    let w = Want {
                        short: "an array",
                        expected: "an array of virtual addresses",
                        example: "[\"192.0.2.100/24\"]",
                    };
                    self.type_error(&f, &w, None);
                    ok = false;
                }
            },
            None => {
                self.push(
                    Problem::new(
                        span.clone(),
                        label.clone(),
                        "vrrp_instance without `virtual_ipaddress`",
                    )
                    .expected("virtual_ipaddress = [\"192.0.2.100/24\"]: the addresses that move")
                    .fix("add virtual_ipaddress = [\"192.0.2.100/24\"]"),
                );
                ok = false;
            }
        }
        // One family, at most 255, no duplicates.
        if let Some((first, _, _)) = vips.first() {
            let v6 = first.address.is_ipv6();
            let mut seen: Vec<IpAddr> = Vec::new();
            for (v, s, p) in &vips {
                if v.address.is_ipv6() != v6 {
                    self.push(
                        Problem::new(s.clone(), p.clone(), "IPv4 and IPv6 virtual addresses in one instance")
                            .expected(format!("{} addresses like the first one", if v6 { "IPv6" } else { "IPv4" }))
                            .fix("VRRP runs one family per instance: put the other family's VIPs in a second vrrp_instance (its own virtual_router_id may be the same)"),
                    );
                    ok = false;
                } else if seen.contains(&v.address) {
                    self.push(
                        Problem::new(
                            s.clone(),
                            p.clone(),
                            format!("{} is listed twice", v.address),
                        )
                        .expected("each address once")
                        .fix("remove the duplicate"),
                    );
                    ok = false;
                }
                seen.push(v.address);
            }
            if vips.len() > 255 {
                ok = false;
            }
            if version == 2 && v6 {
                if let Some(f) = self.field(&n, "virtual_ipaddress") {
                    self.push(
                        Problem::new(
                            f.span.clone(),
                            f.path.clone(),
                            "IPv6 virtual addresses with version = 2",
                        )
                        .expected("IPv4 only with VRRPv2")
                        .fix("remove version = 2 (VRRPv3 carries IPv6)"),
                    );
                }
                ok = false;
            }
        }
        let family_v6 = vips.first().map(|(v, _, _)| v.address.is_ipv6());
        let unicast_source = self.field(&n, "unicast_source").and_then(|f| {
            let a = self.ip(&f, "\"192.0.2.2\"")?;
            if family_v6.is_some_and(|v6| v6 != a.is_ipv6()) {
                self.push(
                    Problem::new(
                        f.span.clone(),
                        f.path.clone(),
                        "unicast_source is not of the VIPs' family",
                    )
                    .expected("an address of the same family as virtual_ipaddress")
                    .fix("use this director's address on the interface, of the VIPs' family"),
                );
                return None;
            }
            Some(a)
        });
        let mut unicast_peers = Vec::new();
        if let Some(f) = self.field(&n, "unicast_peers") {
            unicast_peers = self.ip_list(&f, "\"192.0.2.3\"");
            if family_v6.is_some_and(|v6| unicast_peers.iter().any(|a| a.is_ipv6() != v6)) {
                self.push(
                    Problem::new(
                        f.span.clone(),
                        f.path.clone(),
                        "unicast_peers are not all of the VIPs' family",
                    )
                    .expected("peer addresses of the same family as virtual_ipaddress")
                    .fix("list the other directors' addresses of the VIPs' family"),
                );
                ok = false;
            }
            if unicast_peers.is_empty() {
                self.push(
                    Problem::new(f.span.clone(), f.path.clone(), "unicast_peers is empty")
                        .expected("the other directors' addresses, or no unicast_peers for multicast")
                        .fix("list the peers, or remove unicast_peers (and unicast_source) to use multicast"),
                );
                ok = false;
            }
        } else if let (Some(_), Some(f)) = (unicast_source, self.field(&n, "unicast_source")) {
            self.push(
                Problem::new(
                    f.span.clone(),
                    f.path.clone(),
                    "unicast_source without unicast_peers",
                )
                .expected("unicast_peers = [\"192.0.2.3\"] with unicast_source")
                .fix("add unicast_peers, or remove unicast_source to use multicast"),
            );
            ok = false;
        }
        let auth = match self.field(&n, "auth") {
            Some(f) => self.auth(&f, version),
            None => VrrpAuth::None,
        };
        let mut paths = Vec::new();
        if let Some(f) = self.field(&n, "paths") {
            match self.paths(&f, family_v6, interface.as_deref()) {
                Some(p) => paths = p,
                None => ok = false,
            }
            if !paths.is_empty() && !matches!(auth, VrrpAuth::HmacSha256 { .. }) {
                self.push(
                    Problem::new(f.span.clone(), f.path.clone(), "paths without HMAC authentication")
                        .expected("auth = { type = \"hmac-sha256\", key = \"…\" }: redundant paths are halb to halb, and an advert over a second link must be authenticated like the first")
                        .fix("add auth = { type = \"hmac-sha256\", key = \"a long shared secret\" } on both directors, or remove `paths` (with a keepalived peer, one path only)"),
                );
                ok = false;
            }
        }
        let mut garp = VrrpGarp {
            count: 5,
            interval: Duration::from_millis(10),
            delay: Some(Duration::from_secs(5)),
            refresh: None,
        };
        if let Some(f) = self.field(&n, "garp") {
            if let Some(g) = self.sub_table(
                &f,
                "{ count = 5, interval = \"10ms\", delay = \"5s\", refresh = \"60s\" }",
                "{ count = 5 }",
            ) {
                self.vrrp_keys(
                    &g,
                    GARP_KEYS,
                    "a garp key",
                    &[
                        ("repeat", "did you mean `count`?"),
                        ("master_delay", "did you mean `delay`?"),
                    ],
                );
                if let Some(x) = self.field(&g, "count") {
                    if let Some(v) = self.small_int(
                        &x,
                        (0, 100),
                        "an integer 0..100 (default 5)",
                        "5",
                        "use 0 (none) up to 100",
                    ) {
                        garp.count = v as u32;
                    }
                }
                if let Some(x) = self.field(&g, "interval") {
                    if let Some(d) = self.interval(&x, Duration::ZERO, "") {
                        garp.interval = d;
                    }
                }
                if let Some(x) = self.field(&g, "delay") {
                    if let Some(d) = self.interval(&x, Duration::ZERO, "") {
                        garp.delay = (!d.is_zero()).then_some(d);
                    }
                }
                if let Some(x) = self.field(&g, "refresh") {
                    if let Some(d) = self.interval(&x, Duration::ZERO, "") {
                        garp.refresh = (!d.is_zero()).then_some(d);
                    }
                }
            }
        }
        let track_interface = match self.field(&n, "track_interface") {
            Some(f) => self
                .str_list(&f, IFNAME_EXPECTED, "\"eth1\"")
                .into_iter()
                .filter_map(|(s, _)| valid_ifname(&s).then_some(s))
                .collect(),
            None => Vec::new(),
        };
        let mut track_service = Vec::new();
        let mut track_service_spans = Vec::new();
        if let Some(f) = self.field(&n, "track_service") {
            for (j, t, tspan) in self.tables(
                &f,
                "vrrp_instance.track_service",
                "service = \"web\", weight = -50",
            ) {
                let tn = Node {
                    tbl: t,
                    path: format!("{}[{j}]", f.path),
                    span: tspan.clone(),
                };
                self.vrrp_keys(
                    &tn,
                    TRACK_SERVICE_KEYS,
                    "a track_service key",
                    &[("name", "did you mean `service`?")],
                );
                let svc = self.field(&tn, "service");
                let service = svc.as_ref().and_then(|s| {
                    self.vrrp_str(s, "a virtual service name", "\"web\"")
                        .map(str::to_owned)
                });
                if svc.is_none() {
                    self.push(
                        Problem::new(
                            tspan.clone(),
                            tn.path.clone(),
                            "track_service without `service`",
                        )
                        .expected("service = \"NAME\" of a [[virtual_service]]")
                        .fix("add service = \"web\""),
                    );
                }
                let weight = match self.field(&tn, "weight") {
                    Some(w) => self.small_int(
                        &w,
                        (-254, 254),
                        "an integer -254..254 (0: Fault)",
                        "-50",
                        "use -254..254; 0 puts the instance in Fault",
                    ),
                    None => Some(0),
                };
                if let (Some(service), Some(weight), Some(sf)) = (service, weight, svc) {
                    track_service.push(TrackService {
                        service,
                        weight: weight as i32,
                    });
                    track_service_spans.push(sf.span.clone());
                }
            }
        }
        let track_ping = match self.field(&n, "track_ping") {
            Some(f) => self.track_ping(&f),
            None => None,
        };
        let mut track_script = Vec::new();
        if let Some(f) = self.field(&n, "track_script") {
            for (j, t, tspan) in self.tables(
                &f,
                "vrrp_instance.track_script",
                "name = \"chk\", command = \"/usr/local/bin/check.sh\"",
            ) {
                let tn = Node {
                    tbl: t,
                    path: format!("{}[{j}]", f.path),
                    span: tspan.clone(),
                };
                if let Some(s) = self.track_script(&tn, j) {
                    track_script.push(s);
                }
            }
        }
        let vip_on_loopback_when_backup = self.vrrp_bool(&n, "vip_on_loopback_when_backup", false);
        if vip_on_loopback_when_backup && family_v6 == Some(true) {
            if let Some(f) = self.field(&n, "vip_on_loopback_when_backup") {
                self.push(
                    Problem::new(
                        f.span.clone(),
                        f.path.clone(),
                        "vip_on_loopback_when_backup with IPv6 VIPs",
                    )
                    .expected("IPv4 VIPs (arp_ignore/arp_announce are IPv4 settings)")
                    .fix("remove it for this IPv6 instance"),
                );
                ok = false;
            }
        }
        let notify = self.notify(&n, true);
        let vi = match (name, interface, vrid, priority, advert_interval) {
            (
                Some(name),
                Some(interface),
                Some(virtual_router_id),
                Some(priority),
                Some(advert_interval),
            ) if ok => Some(VrrpInstance {
                name,
                interface,
                virtual_router_id,
                version,
                priority,
                advert_interval,
                preempt,
                preempt_delay,
                accept,
                virtual_ipaddress: vips.into_iter().map(|(v, _, _)| v).collect(),
                unicast_source,
                unicast_peers,
                paths,
                auth,
                garp,
                track_interface,
                track_service,
                track_ping,
                track_script,
                vip_on_loopback_when_backup,
                notify,
            }),
            _ => None,
        };
        let ok = vi.is_some();
        Inst {
            vi: vi.unwrap_or_else(|| placeholder(label.clone())),
            name_span,
            vrid_span,
            label,
            track_service_spans,
            ok,
        }
    }

    /// `paths = [{ interface, unicast_source, unicast_peer }, …]`; `None`
    /// if any is wrong (each problem reported).
    fn paths(
        &mut self,
        f: &Field,
        family_v6: Option<bool>,
        own_interface: Option<&str>,
    ) -> Option<Vec<VrrpPath>> {
        let mut out = Vec::new();
        let mut ok = true;
        let mut seen: Vec<String> = Vec::new();
        let example = "interface = \"eth1\", unicast_peer = \"198.51.100.2\"";
        for (j, t, tspan) in self.tables(f, "vrrp_instance.paths", example) {
            let tn = Node {
                tbl: t,
                path: format!("{}[{j}]", f.path),
                span: tspan.clone(),
            };
            self.vrrp_keys(
                &tn,
                PATH_KEYS,
                "a paths key",
                &[
                    (
                        "unicast_peers",
                        "one peer per path: did you mean `unicast_peer`?",
                    ),
                    ("peer", "did you mean `unicast_peer`?"),
                    ("source", "did you mean `unicast_source`?"),
                    ("dev", "did you mean `interface`?"),
                ],
            );
            let interface = match self.field(&tn, "interface") {
                Some(x) => {
                    let i = self.ifname(&x);
                    if let Some(name) = &i {
                        let again = own_interface == Some(name.as_str()) || seen.contains(name);
                        if again {
                            self.push(
                                Problem::new(x.span.clone(), x.path.clone(), format!("path over {} again", quote(name)))
                                    .expected("another link than the instance's `interface` and the other paths: a second path over the same link dies with it")
                                    .fix("give the dedicated link's interface, e.g. \"eth1\""),
                            );
                            ok = false;
                        }
                        seen.push(name.clone());
                    }
                    i
                }
                None => {
                    self.push(
                        Problem::new(tspan.clone(), tn.path.clone(), "path without `interface`")
                            .expected(
                                "interface = \"eth1\": the dedicated link to the peer director",
                            )
                            .fix("add interface = \"eth1\""),
                    );
                    None
                }
            };
            let family = |cx: &mut Self, x: &Field, a: IpAddr| {
                if family_v6.is_some_and(|v6| v6 != a.is_ipv6()) {
                    cx.push(
                        Problem::new(
                            x.span.clone(),
                            x.path.clone(),
                            format!("{} is not of the VIPs' family", x.name),
                        )
                        .expected("an address of the same family as virtual_ipaddress")
                        .fix("use the directors' addresses on the path of the VIPs' family"),
                    );
                    return None;
                }
                Some(a)
            };
            let unicast_source = match self.field(&tn, "unicast_source") {
                Some(x) => match self
                    .ip(&x, "\"198.51.100.1\"")
                    .and_then(|a| family(self, &x, a))
                {
                    Some(a) => Some(a),
                    None => {
                        ok = false;
                        None
                    }
                },
                None => None,
            };
            let unicast_peer = match self.field(&tn, "unicast_peer") {
                Some(x) => self
                    .ip(&x, "\"198.51.100.2\"")
                    .and_then(|a| family(self, &x, a)),
                None => {
                    self.push(
                        Problem::new(tspan.clone(), tn.path.clone(), "path without `unicast_peer`")
                            .expected("unicast_peer = \"198.51.100.2\": the peer director's address on this link")
                            .fix("add unicast_peer = \"198.51.100.2\""),
                    );
                    None
                }
            };
            match (interface, unicast_peer) {
                (Some(interface), Some(unicast_peer)) => out.push(VrrpPath {
                    interface,
                    unicast_source,
                    unicast_peer,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn track_ping(&mut self, f: &Field) -> Option<TrackPing> {
        let n = self.sub_table(
            f,
            "{ hosts = [\"192.0.2.1\"], interval = \"1s\", timeout = \"1s\", fall = 3, rise = 2 }",
            "{ hosts = [\"192.0.2.1\"] }",
        )?;
        self.vrrp_keys(
            &n,
            TRACK_PING_KEYS,
            "a track_ping key",
            &[
                ("host", "did you mean `hosts`?"),
                ("ping_nodes", "did you mean `hosts`?"),
            ],
        );
        let hosts = match self.field(&n, "hosts") {
            Some(h) => self.ip_list(&h, "\"192.0.2.1\""),
            None => Vec::new(),
        };
        if hosts.is_empty() {
            self.push(
                Problem::new(f.span.clone(), f.path.clone(), "track_ping without hosts")
                    .expected(
                        "hosts = [\"192.0.2.1\"]: addresses to ping (e.g. the default gateway)",
                    )
                    .fix("add hosts = [\"192.0.2.1\"]"),
            );
            return None;
        }
        let d = |cx: &mut Self, k: &str, def: u64| match cx.field(&n, k) {
            Some(x) => cx.interval(&x, Duration::from_millis(10), "use at least \"10ms\""),
            None => Some(Duration::from_secs(def)),
        };
        let interval = d(self, "interval", 1)?;
        let timeout = d(self, "timeout", 1)?;
        let c = |cx: &mut Self, k: &str, def: i64| match cx.field(&n, k) {
            Some(x) => cx.small_int(&x, (1, 100), "an integer 1..100", "3", "use 1..100"),
            None => Some(def),
        };
        let fall = c(self, "fall", 3)? as u32;
        let rise = c(self, "rise", 2)? as u32;
        Some(TrackPing {
            hosts,
            interval,
            timeout,
            fall,
            rise,
        })
    }

    fn track_script(&mut self, n: &Node, j: usize) -> Option<TrackScript> {
        self.vrrp_keys(
            n,
            TRACK_SCRIPT_KEYS,
            "a track_script key",
            &[("script", "did you mean `command`?")],
        );
        let name = match self.field(n, "name") {
            Some(f) => self.vrrp_str(&f, "a name", "\"check_haproxy\"")?.to_owned(),
            None => format!("script{j}"),
        };
        let Some(cf) = self.field(n, "command") else {
            self.push(
                Problem::new(
                    n.span.clone(),
                    n.path.clone(),
                    "track_script without `command`",
                )
                .expected("command = \"/usr/local/bin/check.sh\": exit 0 is up")
                .fix("add command = \"/usr/local/bin/check.sh\""),
            );
            return None;
        };
        let command = self.argv(&cf)?;
        let interval = match self.field(n, "interval") {
            Some(f) => self.interval(&f, Duration::from_millis(10), "use at least \"10ms\"")?,
            None => Duration::from_secs(2),
        };
        let timeout = match self.field(n, "timeout") {
            Some(f) => self.interval(&f, Duration::from_millis(10), "use at least \"10ms\"")?,
            None => interval,
        };
        let c = |cx: &mut Self, k: &str, def: i64| match cx.field(n, k) {
            Some(x) => cx.small_int(&x, (1, 100), "an integer 1..100", "2", "use 1..100"),
            None => Some(def),
        };
        let rise = c(self, "rise", 1)? as u32;
        let fall = c(self, "fall", 1)? as u32;
        let weight = match self.field(n, "weight") {
            Some(w) => self.small_int(
                &w,
                (-254, 254),
                "an integer -254..254 (0: failure is Fault)",
                "-20",
                "use -254..254; 0 puts the instance in Fault",
            )? as i32,
            None => 0,
        };
        Some(TrackScript {
            name,
            command,
            interval,
            timeout,
            rise,
            fall,
            weight,
        })
    }

    pub(super) fn vrrp_sync_group(
        &mut self,
        tbl: Tbl,
        span: Span,
        i: usize,
    ) -> Option<(VrrpSyncGroup, Vec<Span>)> {
        let n = Node {
            tbl,
            path: format!("vrrp_sync_group[{i}]"),
            span: span.clone(),
        };
        self.vrrp_keys(
            &n,
            GROUP_KEYS,
            "a vrrp_sync_group key",
            &[
                ("group", "did you mean `instances`?"),
                ("members", "did you mean `instances`?"),
            ],
        );
        let name = match self.field(&n, "name") {
            Some(f) => self
                .vrrp_str(&f, "a unique name", "\"G1\"")
                .map(str::to_owned),
            None => {
                self.push(
                    Problem::new(
                        span.clone(),
                        n.path.clone(),
                        "vrrp_sync_group without `name`",
                    )
                    .expected("name = \"G1\"")
                    .fix("add name = \"G1\""),
                );
                None
            }
        };
        let members = match self.field(&n, "instances") {
            Some(f) => self.str_list(&f, "instance names", "\"VI_1\""),
            None => {
                self.push(
                    Problem::new(
                        span.clone(),
                        n.path.clone(),
                        "vrrp_sync_group without `instances`",
                    )
                    .expected("instances = [\"VI_1\", \"VI_2\"]")
                    .fix("add instances = [\"VI_1\", \"VI_2\"]"),
                );
                Vec::new()
            }
        };
        let notify = self.notify(&n, false);
        let name = name?;
        let spans = members.iter().map(|(_, s)| s.clone()).collect();
        Some((
            VrrpSyncGroup {
                name,
                instances: members.into_iter().map(|(s, _)| s).collect(),
                notify,
            },
            spans,
        ))
    }

    /// Checks across instances and groups; `services`: the names of the
    /// virtual services.
    pub(super) fn vrrp_cross(
        &mut self,
        insts: &[Inst],
        groups: &[(VrrpSyncGroup, Vec<Span>, Span)],
        services: &[String],
    ) -> bool {
        let before = self.errors.len();
        let mut names: HashMap<&str, usize> = HashMap::new();
        for x in insts.iter().filter(|x| x.ok) {
            if let (Some(&line), Some(span)) = (names.get(x.vi.name.as_str()), &x.name_span) {
                self.push(
                    Problem::new(
                        span.clone(),
                        format!("{}.name", x.label),
                        format!("duplicate vrrp_instance name {}", quote(&x.vi.name)),
                    )
                    .expected("a name no other vrrp_instance has")
                    .fix(format!("rename one of them (the other is at line {line})")),
                );
            } else if let Some(span) = &x.name_span {
                names.insert(&x.vi.name, self.line(span));
            }
        }
        let mut vrids: HashMap<(&str, u8, bool), (usize, &str)> = HashMap::new();
        for x in insts.iter().filter(|x| x.ok) {
            let v6 =
                x.vi.virtual_ipaddress
                    .first()
                    .is_some_and(|v| v.address.is_ipv6());
            let key = (x.vi.interface.as_str(), x.vi.virtual_router_id, v6);
            let Some(span) = &x.vrid_span else { continue };
            match vrids.get(&key) {
                Some((line, other)) => self.push(
                    Problem::new(span.clone(), format!("{}.virtual_router_id", x.label), format!("virtual_router_id {} is already used on {} by {other} (line {line})", x.vi.virtual_router_id, x.vi.interface))
                        .expected("one virtual_router_id per interface and address family")
                        .fix("give this instance another virtual_router_id, or merge the two instances' virtual_ipaddress"),
                ),
                None => {
                    vrids.insert(key, (self.line(span), &x.label));
                }
            }
        }
        for x in insts.iter().filter(|x| x.ok) {
            for (t, span) in x.vi.track_service.iter().zip(&x.track_service_spans) {
                if !services.contains(&t.service) {
                    let fix = match closest(
                        &t.service,
                        &services.iter().map(String::as_str).collect::<Vec<_>>(),
                    ) {
                        Some(c) => format!("did you mean {}?", quote(c)),
                        None if services.is_empty() => {
                            "define the [[virtual_service]] first, with name = …".to_owned()
                        }
                        None => format!(
                            "use one of: {}",
                            services
                                .iter()
                                .map(|s| quote(s))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    self.push(
                        Problem::new(
                            span.clone(),
                            format!("{}.track_service", x.label),
                            format!("no virtual service named {}", quote(&t.service)),
                        )
                        .expected("the name of a [[virtual_service]] in this file")
                        .fix(fix),
                    );
                }
            }
        }
        let known: Vec<&str> = insts
            .iter()
            .filter(|x| x.ok)
            .map(|x| x.vi.name.as_str())
            .collect();
        let mut member_of: HashMap<&str, &str> = HashMap::new();
        let mut gnames: HashMap<&str, usize> = HashMap::new();
        for (g, spans, gspan) in groups {
            if let Some(line) = gnames.get(g.name.as_str()) {
                self.push(
                    Problem::new(
                        gspan.clone(),
                        format!("vrrp_sync_group {}", quote(&g.name)),
                        format!("duplicate vrrp_sync_group name {}", quote(&g.name)),
                    )
                    .expected("a name no other sync group has")
                    .fix(format!("rename one of them (the other is at line {line})")),
                );
            } else {
                gnames.insert(&g.name, self.line(gspan));
            }
            for (m, span) in g.instances.iter().zip(spans) {
                let path = format!("vrrp_sync_group {}.instances", quote(&g.name));
                if !known.contains(&m.as_str()) && !insts.iter().any(|x| !x.ok) {
                    let fix = match closest(m, &known) {
                        Some(c) => format!("did you mean {}?", quote(c)),
                        None => "list names of [[vrrp_instance]] tables".to_owned(),
                    };
                    self.push(
                        Problem::new(
                            span.clone(),
                            path,
                            format!("no vrrp_instance named {}", quote(m)),
                        )
                        .expected("the name of a [[vrrp_instance]] in this file")
                        .fix(fix),
                    );
                } else if let Some(other) = member_of.get(m.as_str()) {
                    self.push(
                        Problem::new(
                            span.clone(),
                            path,
                            format!("{} is already in sync group {}", quote(m), quote(other)),
                        )
                        .expected("each instance in at most one sync group")
                        .fix("remove it from one of the groups, or merge the groups"),
                    );
                } else {
                    member_of.insert(m, &g.name);
                }
            }
        }
        self.errors.len() == before
    }
}

fn placeholder(name: String) -> VrrpInstance {
    VrrpInstance {
        name,
        interface: String::new(),
        virtual_router_id: 1,
        version: 3,
        priority: 100,
        advert_interval: Duration::from_secs(1),
        preempt: true,
        preempt_delay: Duration::ZERO,
        accept: false,
        virtual_ipaddress: Vec::new(),
        unicast_source: None,
        unicast_peers: Vec::new(),
        paths: Vec::new(),
        auth: VrrpAuth::None,
        garp: VrrpGarp {
            count: 5,
            interval: Duration::from_millis(10),
            delay: Some(Duration::from_secs(5)),
            refresh: None,
        },
        track_interface: Vec::new(),
        track_service: Vec::new(),
        track_ping: None,
        track_script: Vec::new(),
        vip_on_loopback_when_backup: false,
        notify: Notify::default(),
    }
}

/// A password or key, shown as `"<redacted>"`.
fn secret<T, S: serde::Serializer>(_: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
}
