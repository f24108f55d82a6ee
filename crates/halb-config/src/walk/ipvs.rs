//! The IPVS keys: `data_plane` (per service or in `[global]`), `fwmark`,
//! `one_packet`, `protocol = "sctp"`, per real server `forward`,
//! `tunnel_type`, `tunnel_port`, and `[global.ipvs]` with its
//! `sync_daemon` table. Each key is checked here; walk.rs only calls in.

use super::{Cx, Defaults, Field, Node, Section, Span, Want};
use crate::diag::Problem;
use crate::{ForeignServices, Global, SyncDaemonConfig, SyncRole};
use halb_table::{DataPlaneKind, Forward, Protocol, TunnelChecksum, TunnelType, VirtualService};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

pub(super) const IPVS_KEYS: &[&str] = &[
    "timeout_tcp",
    "timeout_tcpfin",
    "timeout_udp",
    "foreign",
    "sync_daemon",
];
pub(super) const SYNC_KEYS: &[&str] = &[
    "state",
    "vrrp_instance",
    "interface",
    "sync_id",
    "group",
    "port",
    "ttl",
    "max_len",
];

const PLANE_SYNONYMS: &[(&str, &str)] = &[
    ("userspace", "proxy"),
    ("user", "proxy"),
    ("kernel", "ipvs"),
    ("lvs", "ipvs"),
];
/// ipvsadm and keepalived spellings of the forwarding methods.
const FORWARD_SYNONYMS: &[(&str, &str)] = &[
    ("dr", "route"),
    ("gate", "route"),
    ("gatewaying", "route"),
    ("direct", "route"),
    ("directrouting", "route"),
    ("droute", "route"),
    ("nat", "masq"),
    ("masquerade", "masq"),
    ("masquerading", "masq"),
    ("tun", "tunnel"),
    ("ipip", "tunnel"),
];
const TUNNEL_SYNONYMS: &[(&str, &str)] = &[("ipinip", "ipip"), ("fou", "gue")];
const CSUM_SYNONYMS: &[(&str, &str)] = &[
    ("none", "nocsum"),
    ("off", "nocsum"),
    ("tun-nocsum", "nocsum"),
    ("tun-csum", "csum"),
    ("on", "csum"),
    ("tun-remcsum", "remcsum"),
    ("remote", "remcsum"),
];
const FOREIGN_SYNONYMS: &[(&str, &str)] = &[
    ("leave", "keep"),
    ("ignore", "keep"),
    ("delete", "remove"),
    ("purge", "remove"),
];
const STATE_SYNONYMS: &[(&str, &str)] = &[("primary", "master"), ("secondary", "backup")];

impl Cx<'_> {
    fn plane(&mut self, f: &Field) -> Option<DataPlaneKind> {
        match self.choice(f, "data plane", &["proxy", "ipvs"], PLANE_SYNONYMS)? {
            "ipvs" => Some(DataPlaneKind::Ipvs),
            _ => Some(DataPlaneKind::Proxy),
        }
    }

    /// `[global] data_plane` and `[global.ipvs]`.
    pub(super) fn ipvs_global(&mut self, n: &Node, g: &mut Global) {
        if let Some(f) = self.field(n, "data_plane") {
            if let Some(p) = self.plane(&f) {
                g.data_plane = p;
            }
        }
        let Some(f) = self.field(n, "ipvs") else {
            return;
        };
        let w = Want {
            short: "a table",
            expected: "a [global.ipvs] table",
            example: "",
        };
        let Some(node) = self.table(&f, &w, Some("write it as a table: [global.ipvs]".into()))
        else {
            return;
        };
        self.check_keys(&node, Section::Ipvs);
        let timeout = |cx: &mut Self, key: &str| -> Option<Duration> {
            let f = cx.field(&node, key)?;
            cx.duration(
                &f,
                Duration::from_secs(1),
                "the kernel counts whole seconds: use at least \"1s\"",
            )
        };
        g.ipvs.timeout_tcp = timeout(self, "timeout_tcp");
        g.ipvs.timeout_tcpfin = timeout(self, "timeout_tcpfin");
        g.ipvs.timeout_udp = timeout(self, "timeout_udp");
        if let Some(f) = self.field(&node, "foreign") {
            match self.choice(&f, "foreign policy", &["keep", "remove"], FOREIGN_SYNONYMS) {
                Some("remove") => g.ipvs.foreign = ForeignServices::Remove,
                Some(_) => g.ipvs.foreign = ForeignServices::Keep,
                None => {}
            }
        }
        if let Some(f) = self.field(&node, "sync_daemon") {
            let w = Want {
                short: "a table",
                expected: "a [global.ipvs.sync_daemon] table",
                example: "",
            };
            if let Some(sn) = self.table(
                &f,
                &w,
                Some("write it as a table: [global.ipvs.sync_daemon]".into()),
            ) {
                g.ipvs.sync_daemon = self.sync_daemon(&sn);
            }
        }
    }

    fn sync_daemon(&mut self, n: &Node) -> Option<SyncDaemonConfig> {
        self.check_keys(n, Section::SyncDaemon);
        let before = self.errors.len();
        let follow = match self.field(n, "vrrp_instance") {
            Some(f) => {
                let w = Want {
                    short: "a string",
                    expected: "the name of a [[vrrp_instance]]",
                    example: "\"VI_1\"",
                };
                self.string(&f, &w).map(|name| {
                    self.sync_follow = Some((f.span.clone(), name.to_owned()));
                    name.to_owned()
                })
            }
            None => None,
        };
        let state = match (self.field(n, "state"), self.field(n, "vrrp_instance")) {
            (Some(f), Some(_)) => {
                self.push(
                    Problem::new(f.span.clone(), f.path.clone(), "`state` and `vrrp_instance` together")
                        .expected("either a fixed state, or the VRRP instance the state follows")
                        .fix("remove state: with vrrp_instance the sync daemon is master while that instance is master and backup otherwise (keepalived's lvs_sync_daemon)"),
                );
                None
            }
            (None, Some(_)) => Some(SyncRole::Backup),
            (Some(f), None) => match self.choice(
                &f,
                "sync daemon state",
                &["master", "backup"],
                STATE_SYNONYMS,
            ) {
                Some("backup") => Some(SyncRole::Backup),
                Some(_) => Some(SyncRole::Master),
                None => None,
            },
            (None, None) => {
                self.push(
                    Problem::new(n.span.clone(), super::join(&n.path, "state"), "missing `state` (or `vrrp_instance`)")
                        .expected("state = \"master\" or \"backup\", or vrrp_instance = \"NAME\"")
                        .fix("add vrrp_instance = \"VI_1\" to follow that VRRP instance (master while it is master), or a fixed state = \"master\" on the director that sends connection state, \"backup\" on the one that receives it"),
                );
                None
            }
        };
        let interface = match self.field(n, "interface") {
            Some(f) => {
                let w = Want {
                    short: "a string",
                    expected: "a network interface name (at most 15 characters)",
                    example: "\"eth0\"",
                };
                match self.string(&f, &w) {
                    Some(s) if !s.is_empty() && s.len() <= 15 && !s.contains('/') => {
                        Some(s.to_owned())
                    }
                    Some(s) => {
                        self.push(
                            Problem::new(f.span.clone(), f.path.clone(), format!("{s:?} is not an interface name"))
                                .expected("a network interface name (1 to 15 characters, no '/')")
                                .fix("use the interface the sync traffic leaves by, e.g. \"eth0\" (see `ip link`)"),
                        );
                        None
                    }
                    None => None,
                }
            }
            None => {
                self.push(
                    Problem::new(
                        n.span.clone(),
                        super::join(&n.path, "interface"),
                        "missing `interface`",
                    )
                    .expected("interface = \"NAME\"")
                    .fix("add interface = \"eth0\" (the interface the sync multicast uses)"),
                );
                None
            }
        };
        let int = |cx: &mut Self,
                   key: &str,
                   range: (i64, i64),
                   example: &'static str,
                   fix: &str|
         -> Option<i64> {
            let f = cx.field(n, key)?;
            let expected = format!("an integer {}..{}", range.0, range.1);
            let w = Want {
                short: "an integer",
                expected: &expected,
                example,
            };
            cx.int_range(&f, &w, range, fix)
        };
        let sync_id = int(
            self,
            "sync_id",
            (0, 255),
            "1",
            "sync_id is one byte: 0..255, the same on master and backup",
        )
        .unwrap_or(0) as u32;
        let port = int(
            self,
            "port",
            (1, 65535),
            "8848",
            "use a UDP port, 1..65535 (default 8848)",
        )
        .map(|p| p as u16);
        let ttl = int(
            self,
            "ttl",
            (1, 255),
            "1",
            "use a TTL of 1..255 (default 1: the local link)",
        )
        .map(|t| t as u8);
        let max_len = int(
            self,
            "max_len",
            (1, 65535),
            "1472",
            "use a message size of 1..65535 bytes (default: from the interface MTU)",
        )
        .map(|l| l as u16);
        let group = match self.field(n, "group") {
            Some(f) => {
                let w = Want {
                    short: "a string",
                    expected: "a multicast address",
                    example: "\"224.0.0.81\"",
                };
                match self.string(&f, &w).map(|s| s.parse::<std::net::IpAddr>()) {
                    Some(Ok(ip)) if ip.is_multicast() => Some(ip),
                    Some(_) => {
                        self.push(
                            Problem::new(
                                f.span.clone(),
                                f.path.clone(),
                                format!("group {} is not a multicast address", self.raw(&f.span)),
                            )
                            .expected("an IPv4 (224.0.0.0/4) or IPv6 (ff00::/8) multicast address")
                            .fix("use the default group \"224.0.0.81\", or remove group"),
                        );
                        None
                    }
                    None => None,
                }
            }
            None => None,
        };
        if self.errors.len() != before {
            return None;
        }
        Some(SyncDaemonConfig {
            state: state?,
            follow,
            interface: interface?,
            sync_id,
            group,
            port,
            ttl,
            max_len,
        })
    }

    /// `vrrp_instance` of the sync daemon names a VRRP instance.
    pub(super) fn sync_follow_check(&mut self, instances: &[super::vrrp::VrrpInstance]) {
        let Some((span, name)) = self.sync_follow.take() else {
            return;
        };
        if instances.iter().any(|v| v.name == name) {
            return;
        }
        let names: Vec<&str> = instances.iter().map(|v| v.name.as_str()).collect();
        let fix = match crate::suggest::closest(&name, &names) {
            Some(c) => format!("did you mean {}?", crate::values::quote(c)),
            None if names.is_empty() => {
                "define the [[vrrp_instance]] (with name = …) whose role the sync daemon follows"
                    .to_owned()
            }
            None => format!(
                "use one of: {}",
                names
                    .iter()
                    .map(|n| crate::values::quote(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        self.push(
            Problem::new(
                span,
                "global.ipvs.sync_daemon.vrrp_instance",
                format!(
                    "no valid [[vrrp_instance]] named {}",
                    crate::values::quote(&name)
                ),
            )
            .expected("the name of a [[vrrp_instance]] in this file")
            .fix(fix),
        );
    }

    /// The IPVS keys of one virtual service; returns its data plane.
    pub(super) fn ipvs_service(
        &mut self,
        node: &Node,
        d: &Defaults,
        vs: &mut VirtualService,
        protocol_ok: bool,
    ) -> DataPlaneKind {
        let plane_field = self.field(node, "data_plane");
        let plane = plane_field
            .as_ref()
            .and_then(|f| self.plane(f))
            .unwrap_or(d.data_plane);
        vs.data_plane = plane;
        let plane_where = match &plane_field {
            Some(f) => format!("data_plane = \"proxy\" (line {})", self.line(&f.span)),
            None => "the default data_plane \"proxy\"".to_owned(),
        };
        let need_ipvs = |cx: &mut Self, f: &Field, what: &str| {
            cx.push(
                Problem::new(
                    f.span.clone(),
                    f.path.clone(),
                    format!(
                        "{what} needs the IPVS data plane, and this service uses {plane_where}"
                    ),
                )
                .expected("data_plane = \"ipvs\" for this service")
                .fix("add data_plane = \"ipvs\" to this virtual service (or to [global])"),
            );
        };
        if let Some(f) = self.field(node, "fwmark") {
            let w = Want {
                short: "an integer",
                expected: "a firewall mark 1..4294967295",
                example: "1",
            };
            if let Some(m) = self.int_range(
                &f,
                &w,
                (1, i64::from(u32::MAX)),
                "use the mark your nftables/iptables rules set: 1..4294967295",
            ) {
                let mark = m as u32;
                vs.fwmark = Some(mark);
                if plane != DataPlaneKind::Ipvs {
                    need_ipvs(self, &f, "fwmark");
                }
                match self.field(node, "listen") {
                    Some(l) => self.push(
                        Problem::new(l.span.clone(), l.path.clone(), format!("listen and fwmark {mark} both given"))
                            .expected("either listen = \"IP:PORT\" or fwmark = N")
                            .fix("a firewall-mark service matches packets by their mark, whatever their address: remove listen (or remove fwmark)"),
                    ),
                    None => vs.listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                }
            }
        }
        if protocol_ok && vs.protocol == Protocol::Sctp && plane != DataPlaneKind::Ipvs {
            if let Some(f) = self.field(node, "protocol") {
                need_ipvs(self, &f, "protocol \"sctp\"");
            }
        }
        if let Some(f) = self.field(node, "one_packet") {
            if let Some(b) = self.boolean(&f, "true or false") {
                vs.one_packet = b;
                if b && plane != DataPlaneKind::Ipvs {
                    need_ipvs(self, &f, "one_packet");
                } else if b && protocol_ok && vs.protocol != Protocol::Udp {
                    self.push(
                        Problem::new(f.span.clone(), f.path.clone(), format!("one_packet on a {} service", vs.protocol))
                            .expected("protocol = \"udp\" for one_packet")
                            .fix("remove one_packet: it schedules each UDP datagram on its own, and means nothing for connections"),
                    );
                }
            }
        }
        if let Some(f) = self.field(node, "fallback_forward") {
            let choice = self.choice(
                &f,
                "forwarding method",
                &["route", "masq", "tunnel"],
                FORWARD_SYNONYMS,
            );
            if plane != DataPlaneKind::Ipvs {
                self.push(
                    Problem::new(f.span.clone(), f.path.clone(), "fallback_forward needs the IPVS data plane")
                        .expected("data_plane = \"ipvs\" on the virtual service, or no fallback_forward")
                        .fix("remove fallback_forward: the proxy opens its own connection to the fallback"),
                );
            } else if self.field(node, "fallback").is_none() {
                self.push(
                    Problem::new(f.span.clone(), f.path.clone(), "fallback_forward without fallback")
                        .expected("fallback = \"IP:PORT\" with fallback_forward")
                        .fix("add fallback = \"IP:PORT\" (the server used while no real server is up), or remove fallback_forward"),
                );
            }
            match choice {
                Some("masq") => vs.fallback_forward = Forward::Masq,
                Some("tunnel") => vs.fallback_forward = Forward::Tunnel,
                _ => vs.fallback_forward = Forward::Route,
            }
        } else if plane == DataPlaneKind::Ipvs {
            // As a real server's `forward`.
            vs.fallback_forward = Forward::Route;
        }
        if plane == DataPlaneKind::Ipvs {
            if let Some(f) = self.field(node, "proxy_protocol") {
                self.push(
                    Problem::new(f.span.clone(), f.path.clone(), "proxy_protocol is a userspace-proxy setting, and this service uses the IPVS data plane")
                        .expected("no proxy_protocol with data_plane = \"ipvs\"")
                        .fix("the kernel forwards packets and cannot add a PROXY header: remove it, or use data_plane = \"proxy\""),
                );
            }
            for key in ["max_fails", "fail_timeout"] {
                if let Some(f) = self.field(node, key) {
                    self.push(
                        Problem::new(f.span.clone(), f.path.clone(), format!("{key} is a userspace-proxy setting (passive health), and this service uses the IPVS data plane"))
                            .expected("no max_fails or fail_timeout with data_plane = \"ipvs\"")
                            .fix("the kernel makes the connections, so halb cannot see them fail: remove it and configure a health check, or use data_plane = \"proxy\""),
                    );
                }
            }
            if let Some(f) = self.field(node, "udp_max_flows") {
                self.push(
                    Problem::new(f.span.clone(), f.path.clone(), "udp_max_flows is a userspace-proxy setting, and this service uses the IPVS data plane")
                        .expected("no udp_max_flows with data_plane = \"ipvs\"")
                        .fix("the kernel keeps its own connection table (no socket per flow): remove udp_max_flows, or use data_plane = \"proxy\""),
                );
            }
        }
        plane
    }

    /// The span a fwmark service is known by (for duplicate detection).
    /// A mark service is IPv6 when its real servers are.
    pub(super) fn fwmark_span(&self, node: &Node, vs: &mut VirtualService) -> Option<Span> {
        vs.fwmark?;
        if vs.reals.first().is_some_and(|r| r.addr.is_ipv6()) {
            vs.listen = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0));
        }
        self.field(node, "fwmark").map(|f| f.span)
    }

    /// `forward`, `tunnel_type`, `tunnel_port`, `tunnel_checksum` of one
    /// real server.
    pub(super) fn ipvs_real(
        &mut self,
        node: &Node,
        plane: DataPlaneKind,
    ) -> (Forward, TunnelType, u16, TunnelChecksum) {
        let mut forward = match plane {
            DataPlaneKind::Proxy => Forward::Proxy,
            DataPlaneKind::Ipvs => Forward::Route,
        };
        if let Some(f) = self.field(node, "forward") {
            let choice = self.choice(
                &f,
                "forwarding method",
                &["route", "masq", "tunnel", "proxy"],
                FORWARD_SYNONYMS,
            );
            match (choice, plane) {
                (Some("proxy"), DataPlaneKind::Proxy) | (None, _) => {}
                (Some("proxy"), DataPlaneKind::Ipvs) => self.push(
                    Problem::new(f.span.clone(), f.path.clone(), "forward = \"proxy\" on an IPVS service")
                        .expected("forward = \"route\", \"masq\" or \"tunnel\" with data_plane = \"ipvs\"")
                        .fix("use \"route\" (direct routing), \"masq\" (NAT) or \"tunnel\" (IP-in-IP)"),
                ),
                (Some(c), DataPlaneKind::Proxy) => self.push(
                    Problem::new(f.span.clone(), f.path.clone(), format!("forward = \"{c}\" needs the IPVS data plane"))
                        .expected("data_plane = \"ipvs\" on the virtual service, or no forward")
                        .fix("add data_plane = \"ipvs\" to the virtual service, or remove forward (the proxy opens its own connections)"),
                ),
                (Some("masq"), DataPlaneKind::Ipvs) => forward = Forward::Masq,
                (Some("tunnel"), DataPlaneKind::Ipvs) => forward = Forward::Tunnel,
                (Some(_), DataPlaneKind::Ipvs) => forward = Forward::Route,
            }
        }
        let mut tunnel = TunnelType::Ipip;
        if let Some(f) = self.field(node, "tunnel_type") {
            match self.choice(&f, "tunnel type", &["ipip", "gue", "gre"], TUNNEL_SYNONYMS) {
                Some("gue") => tunnel = TunnelType::Gue,
                Some("gre") => tunnel = TunnelType::Gre,
                Some(_) => tunnel = TunnelType::Ipip,
                None => {}
            }
            if forward != Forward::Tunnel {
                self.push(
                    Problem::new(
                        f.span.clone(),
                        f.path.clone(),
                        "tunnel_type without forward = \"tunnel\"",
                    )
                    .expected("tunnel_type only with forward = \"tunnel\"")
                    .fix("add forward = \"tunnel\" to this real server, or remove tunnel_type"),
                );
            }
        }
        let mut port = 0;
        match self.field(node, "tunnel_port") {
            Some(f) => {
                let w = Want {
                    short: "an integer",
                    expected: "a UDP port 1..65535",
                    example: "6080",
                };
                if let Some(p) = self.int_range(
                    &f,
                    &w,
                    (1, 65535),
                    "use the UDP port the real server's GUE receiver listens on",
                ) {
                    port = p as u16;
                }
                if tunnel != TunnelType::Gue {
                    self.push(
                        Problem::new(
                            f.span.clone(),
                            f.path.clone(),
                            "tunnel_port without tunnel_type = \"gue\"",
                        )
                        .expected("tunnel_port only with tunnel_type = \"gue\"")
                        .fix("add tunnel_type = \"gue\", or remove tunnel_port"),
                    );
                }
            }
            None if tunnel == TunnelType::Gue => {
                if let Some(f) = self.field(node, "tunnel_type") {
                    self.push(
                        Problem::new(f.span.clone(), f.path.clone(), "tunnel_type \"gue\" without tunnel_port")
                            .expected("tunnel_port = N with tunnel_type = \"gue\"")
                            .fix("add tunnel_port = 6080 (the UDP port the real server's GUE receiver listens on)"),
                    );
                }
            }
            None => {}
        }
        let mut csum = TunnelChecksum::NoCsum;
        if let Some(f) = self.field(node, "tunnel_checksum") {
            match self.choice(
                &f,
                "tunnel checksum",
                &["nocsum", "csum", "remcsum"],
                CSUM_SYNONYMS,
            ) {
                Some("csum") => csum = TunnelChecksum::Csum,
                Some("remcsum") => csum = TunnelChecksum::RemCsum,
                Some(_) => csum = TunnelChecksum::NoCsum,
                None => {}
            }
            let ok = match csum {
                TunnelChecksum::NoCsum => true,
                TunnelChecksum::Csum => matches!(tunnel, TunnelType::Gue | TunnelType::Gre),
                TunnelChecksum::RemCsum => tunnel == TunnelType::Gue,
            };
            if !ok || forward != Forward::Tunnel {
                let (expected, fix) = if csum == TunnelChecksum::RemCsum {
                    (
                        "tunnel_checksum = \"remcsum\" only with tunnel_type = \"gue\"",
                        "use tunnel_type = \"gue\", or tunnel_checksum = \"csum\" for GRE",
                    )
                } else {
                    (
                        "tunnel_checksum only with tunnel_type = \"gue\" or \"gre\" (IP-in-IP has no checksum of its own)",
                        "add forward = \"tunnel\" and tunnel_type = \"gue\" or \"gre\", or remove tunnel_checksum",
                    )
                };
                self.push(
                    Problem::new(
                        f.span.clone(),
                        f.path.clone(),
                        "tunnel_checksum without a GUE or GRE tunnel that supports it",
                    )
                    .expected(expected)
                    .fix(fix),
                );
            }
        }
        (forward, tunnel, port, csum)
    }
}
