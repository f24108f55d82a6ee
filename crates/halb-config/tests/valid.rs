//! Valid configurations and the model they yield.
#![allow(clippy::unwrap_used)]

use halb_config::{default_control_socket, parse, Config, Global};
use halb_table::{
    Forward, OnDown, Persistence, Protocol, ProxyProtocol, RealServer, SchedulerFlags,
    SchedulerKind, VirtualService,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn ok(src: &str) -> Config {
    match parse(src, Path::new("halb.toml")) {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The example in docs/configuration.md, verbatim.
fn docs_example() -> String {
    let doc = include_str!("../../../docs/configuration.md");
    let start = doc.find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    doc[start..end].to_owned()
}

#[test]
fn docs_example_parses_to_the_model() {
    let cfg = ok(&docs_example());
    assert_eq!(
        cfg.global,
        Global {
            control_socket: PathBuf::from("/run/halb/halb.sock"),
            workers: 0,
            check_concurrency: 0,
            http_listen: Some(addr("127.0.0.1:9090")),
            connect_timeout: Duration::from_secs(3),
            connect_attempts: 3,
            idle_timeout: Duration::from_secs(15 * 60),
            udp_timeout: Duration::from_secs(5 * 60),
            on_down: OnDown::Quiescent,
            ..Global::default()
        }
    );
    let expected = VirtualService {
        name: "web".into(),
        listen: addr("127.0.0.1:8080"),
        protocol: Protocol::Tcp,
        scheduler: SchedulerKind::Sh,
        flags: SchedulerFlags {
            fallback: true,
            port: true,
        },
        persistence: Some(Persistence {
            timeout: Duration::from_secs(600),
            prefix_v4: 24,
            prefix_v6: 64,
        }),
        fallback: Some(addr("127.0.0.1:9999")),
        fallback_forward: Forward::Proxy,
        on_down: OnDown::Remove,
        proxy_protocol: Some(ProxyProtocol::V2),
        connect_timeout: Duration::from_secs(1),
        connect_attempts: 3,
        idle_timeout: Duration::from_secs(15 * 60),
        udp_timeout: Duration::from_secs(5 * 60),
        udp_max_flows: halb_table::DEFAULT_UDP_MAX_FLOWS,
        max_fails: halb_table::DEFAULT_MAX_FAILS,
        fail_timeout: halb_table::DEFAULT_FAIL_TIMEOUT,
        data_plane: halb_table::DataPlaneKind::Proxy,
        fwmark: None,
        one_packet: false,
        reals: vec![RealServer {
            addr: addr("127.0.0.1:18081"),
            weight: 1,
            upper_threshold: 100,
            lower_threshold: 50,
            forward: Forward::Proxy,
            tunnel_type: halb_table::TunnelType::Ipip,
            tunnel_port: 0,
            tunnel_checksum: halb_table::TunnelChecksum::NoCsum,
        }],
    };
    assert_eq!(cfg.services, vec![expected]);
    assert_eq!(cfg.to_table().services, cfg.services);

    // The check: [global] timing, the service's http probe, the real
    // server's port.
    assert_eq!(cfg.checks.len(), 1);
    let check = &cfg.checks[0];
    assert_eq!(check.service, cfg.services[0].key());
    assert_eq!(check.real, addr("127.0.0.1:18081"));
    assert_eq!(check.spec.target, addr("127.0.0.1:18091"));
    assert_eq!(
        check.spec.probe,
        halb_health::ProbeSpec::Http(halb_health::HttpSpec {
            expect_status: vec![200..=200, 300..=399],
            body_contains: Some("OK".into()),
            ..halb_health::HttpSpec::get("/health")
        })
    );
    let t = check.spec.timing;
    assert_eq!(
        (t.interval, t.timeout, t.rise, t.fall),
        (Duration::from_secs(5), Duration::from_secs(3), 2, 3)
    );
}

#[test]
fn defaults_applied() {
    let cfg = ok(r#"
[[virtual_service]]
listen = "10.0.0.1:80"

  [[virtual_service.real_server]]
  address = "10.0.1.1:8080"

  [[virtual_service.real_server]]
  address = "10.0.1.2:8080"
  weight = 0
"#);
    assert_eq!(cfg.global.control_socket, default_control_socket());
    assert_eq!(cfg.global.workers, 0);
    let mut expected = VirtualService::new(
        "tcp/10.0.0.1:80",
        addr("10.0.0.1:80"),
        Protocol::Tcp,
        SchedulerKind::Wlc,
    );
    expected.reals = vec![
        RealServer::new(addr("10.0.1.1:8080"), 1),
        RealServer::new(addr("10.0.1.2:8080"), 0),
    ];
    assert_eq!(cfg.services, vec![expected]);
    assert_eq!(cfg.services[0].reals[0].forward, Forward::Proxy);
}

#[test]
fn empty_file_is_no_services() {
    let cfg = ok("");
    assert!(cfg.services.is_empty());
    assert_eq!(cfg.global, Global::default());
    assert!(cfg.to_table().services.is_empty());
    let cfg = ok("# nothing yet\n[global]\n");
    assert!(cfg.services.is_empty());
}

#[test]
fn global_defaults_and_overrides() {
    let cfg = ok(r#"
[global]
control_socket = "/tmp/x/halb.sock"
workers = 4
check_concurrency = 2000
connect_timeout = "250ms"
connect_attempts = 5
idle_timeout = 0
udp_timeout = "1m"
udp_max_flows = 50000
on_down = "remove"

[[virtual_service]]
name = "inherits"
listen = "10.0.0.1:53"
protocol = "udp"

[[virtual_service]]
name = "overrides"
listen = "10.0.0.1:80"
connect_timeout = 2
connect_attempts = 1
idle_timeout = "1h"
udp_timeout = "30s"
udp_max_flows = 200
on_down = "quiescent"
"#);
    assert_eq!(cfg.global.control_socket, Path::new("/tmp/x/halb.sock"));
    assert_eq!(cfg.global.workers, 4);
    assert_eq!(cfg.global.check_concurrency, 2000);
    assert_eq!(cfg.global.connect_timeout, Duration::from_millis(250));
    assert_eq!(cfg.global.connect_attempts, 5);
    assert_eq!(cfg.global.idle_timeout, Duration::ZERO);
    assert_eq!(cfg.global.udp_timeout, Duration::from_secs(60));
    assert_eq!(cfg.global.on_down, OnDown::Remove);
    // the global cap is a total, not a default
    assert_eq!(cfg.global.udp_max_flows, 50_000);

    let a = &cfg.services[0];
    assert_eq!(a.protocol, Protocol::Udp);
    assert_eq!(a.connect_timeout, Duration::from_millis(250));
    assert_eq!(a.connect_attempts, 5);
    assert_eq!(a.idle_timeout, Duration::ZERO);
    assert_eq!(a.udp_timeout, Duration::from_secs(60));
    assert_eq!(a.on_down, OnDown::Remove);
    assert_eq!(a.udp_max_flows, halb_table::DEFAULT_UDP_MAX_FLOWS);

    let b = &cfg.services[1];
    assert_eq!(b.connect_timeout, Duration::from_secs(2));
    assert_eq!(b.connect_attempts, 1);
    assert_eq!(b.idle_timeout, Duration::from_secs(3600));
    assert_eq!(b.udp_timeout, Duration::from_secs(30));
    assert_eq!(b.on_down, OnDown::Quiescent);
    assert_eq!(b.udp_max_flows, 200);
}

#[test]
fn ipv6_listen() {
    let cfg = ok(r#"
[[virtual_service]]
listen = "[::1]:8080"
fallback = "[::1]:9999"
scheduler = "mh"
scheduler_flags = ["port"]
persistence = { timeout = "1h", prefix_v6 = 48 }

  [[virtual_service.real_server]]
  address = "[2001:db8::10]:80"
  weight = 65535

  [[virtual_service.real_server]]
  address = "[::ffff:192.0.2.1]:80"
"#);
    let s = &cfg.services[0];
    assert_eq!(s.name, "tcp/[::1]:8080");
    assert_eq!(s.listen, addr("[::1]:8080"));
    assert_eq!(s.scheduler, SchedulerKind::Mh);
    assert_eq!(
        s.flags,
        SchedulerFlags {
            fallback: false,
            port: true
        }
    );
    assert_eq!(
        s.persistence,
        Some(Persistence {
            timeout: Duration::from_secs(3600),
            prefix_v4: 32,
            prefix_v6: 48,
        })
    );
    assert_eq!(s.reals[0].weight, 65535);
    assert_eq!(s.reals.len(), 2);
}

#[test]
fn every_scheduler_and_netmask_forms() {
    for k in SchedulerKind::ALL {
        let cfg = ok(&format!(
            "[[virtual_service]]\nlisten = \"10.0.0.1:80\"\nscheduler = \"{k}\"\n"
        ));
        assert_eq!(cfg.services[0].scheduler, k);
    }
    for (mask, prefix) in [
        ("24", 24),
        ("\"255.255.255.0\"", 24),
        ("0", 0),
        ("\"255.255.255.255\"", 32),
        ("17", 17),
    ] {
        let cfg = ok(&format!(
            "[[virtual_service]]\nlisten = \"10.0.0.1:80\"\n[virtual_service.persistence]\nnetmask = {mask}\n"
        ));
        let p = cfg.services[0].persistence.unwrap();
        assert_eq!(p.prefix_v4, prefix, "{mask}");
        assert_eq!(p.timeout, Duration::from_secs(300));
        assert_eq!(p.prefix_v6, 128);
    }
}

#[test]
fn inline_and_dotted_forms() {
    let cfg = ok(r#"
global = { workers = 2 }
virtual_service = [
  { name = "a", listen = "10.0.0.1:80", real_server = [{ address = "10.0.1.1:80", weight = 3 }] },
  { name = "b", listen = "10.0.0.1:81", persistence.timeout = "10m" },
]
"#);
    assert_eq!(cfg.global.workers, 2);
    assert_eq!(cfg.services.len(), 2);
    assert_eq!(cfg.services[0].reals[0].weight, 3);
    assert_eq!(
        cfg.services[1].persistence.unwrap().timeout,
        Duration::from_secs(600)
    );
}

#[test]
fn thresholds_and_same_address_other_protocol() {
    let cfg = ok(r#"
[[virtual_service]]
listen = "10.0.0.1:53"

  [[virtual_service.real_server]]
  address = "10.0.1.1:53"
  upper_threshold = 100

  [[virtual_service.real_server]]
  address = "10.0.1.2:53"
  upper_threshold = 100
  lower_threshold = 99

[[virtual_service]]
listen = "10.0.0.1:53"
protocol = "udp"
"#);
    assert_eq!(cfg.services[0].reals[0].upper_threshold, 100);
    assert_eq!(cfg.services[0].reals[0].lower_threshold, 0);
    assert_eq!(cfg.services[0].reals[1].lower_threshold, 99);
    assert_eq!(cfg.services[1].name, "udp/10.0.0.1:53");
}

#[test]
fn crlf_and_comments() {
    let cfg = ok("# c\r\n[[virtual_service]] # svc\r\nlisten = \"10.0.0.1:80\" # here\r\n");
    assert_eq!(cfg.services[0].listen, addr("10.0.0.1:80"));
}

#[test]
fn ipvs_services_and_global_ipvs() {
    let src = r#"
[global]
data_plane = "ipvs"
[global.ipvs]
timeout_tcp = "15m"
timeout_tcpfin = "2m"
timeout_udp = "5m"
foreign = "remove"
[global.ipvs.sync_daemon]
state = "master"
interface = "eth0"
sync_id = 51
group = "224.0.0.81"
port = 8848
ttl = 1
max_len = 1472

[[virtual_service]]
name = "web"
listen = "192.0.2.10:80"
  [[virtual_service.real_server]]
  address = "198.51.100.1:80"
  [[virtual_service.real_server]]
  address = "198.51.100.2:80"
  forward = "tunnel"
  tunnel_type = "gue"
  tunnel_port = 6080

[[virtual_service]]
name = "diameter"
listen = "192.0.2.10:3868"
protocol = "sctp"
  [[virtual_service.real_server]]
  address = "198.51.100.1:3868"
  forward = "masq"

[[virtual_service]]
fwmark = 7
  [[virtual_service.real_server]]
  address = "[2001:db8::1]:80"

[[virtual_service]]
name = "dns"
listen = "192.0.2.10:53"
protocol = "udp"
one_packet = true
  [[virtual_service.real_server]]
  address = "198.51.100.1:53"

[[virtual_service]]
name = "still-proxied"
data_plane = "proxy"
listen = "127.0.0.1:8080"
  [[virtual_service.real_server]]
  address = "127.0.0.1:18081"
"#;
    let cfg = parse(src, Path::new("ipvs.toml")).unwrap();
    let g = &cfg.global.ipvs;
    assert_eq!(g.timeout_tcp, Some(Duration::from_secs(900)));
    assert_eq!(g.timeout_tcpfin, Some(Duration::from_secs(120)));
    assert_eq!(g.timeout_udp, Some(Duration::from_secs(300)));
    assert_eq!(g.foreign, halb_config::ForeignServices::Remove);
    let d = g.sync_daemon.as_ref().unwrap();
    assert_eq!(d.state, halb_config::SyncRole::Master);
    assert_eq!((d.interface.as_str(), d.sync_id), ("eth0", 51));
    assert_eq!(
        (d.port, d.ttl, d.max_len),
        (Some(8848), Some(1), Some(1472))
    );
    let s = &cfg.services;
    use halb_table::DataPlaneKind::{Ipvs, Proxy};
    assert_eq!(
        s.iter().map(|s| s.data_plane).collect::<Vec<_>>(),
        [Ipvs, Ipvs, Ipvs, Ipvs, Proxy]
    );
    assert_eq!(s[0].reals[0].forward, Forward::Route);
    assert_eq!(s[0].reals[1].forward, Forward::Tunnel);
    assert_eq!(s[0].reals[1].tunnel_type, halb_table::TunnelType::Gue);
    assert_eq!(s[0].reals[1].tunnel_port, 6080);
    assert_eq!(s[1].protocol, Protocol::Sctp);
    assert_eq!(s[1].reals[0].forward, Forward::Masq);
    assert_eq!(s[2].fwmark, Some(7));
    assert_eq!(s[2].name, "fwmark/7");
    assert_eq!(s[2].listen, addr("[::]:0"));
    assert!(s[3].one_packet);
    assert_eq!(s[4].reals[0].forward, Forward::Proxy);
}

#[test]
fn docs_ipvs_example_is_valid() {
    let doc = include_str!("../../../docs/configuration.md");
    let at = doc.find("## IPVS: the kernel data plane").unwrap();
    let start = at + doc[at..].find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let cfg = ok(&doc[start..end]);
    assert_eq!(cfg.services.len(), 4);
    assert!(cfg.global.ipvs.sync_daemon.is_some());
}

#[test]
fn sync_daemon_follows_a_vrrp_instance() {
    let src = r#"
[global.ipvs.sync_daemon]
vrrp_instance = "VI_1"
interface = "eth0"
sync_id = 51

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = 150
virtual_ipaddress = ["192.0.2.100/24"]
"#;
    let cfg = parse(src, Path::new("sync.toml")).unwrap();
    let d = cfg.global.ipvs.sync_daemon.as_ref().unwrap();
    assert_eq!(d.follow.as_deref(), Some("VI_1"));
    // Backup until the instance becomes master, as keepalived starts it.
    assert_eq!(d.state, halb_config::SyncRole::Backup);
}

#[test]
fn garp_second_burst_delay() {
    let cfg = |garp: &str| {
        let src = format!(
            "[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 51\n\
             priority = 150\nvirtual_ipaddress = [\"192.0.2.100/24\"]\n{garp}\n"
        );
        parse(&src, Path::new("garp.toml")).unwrap().vrrp_instances[0]
            .garp
            .delay
    };
    // keepalived's garp_master_delay default: 5 s; 0 turns the burst off.
    assert_eq!(cfg(""), Some(Duration::from_secs(5)));
    assert_eq!(
        cfg("garp = { delay = \"2s\" }"),
        Some(Duration::from_secs(2))
    );
    assert_eq!(cfg("garp = { delay = \"0s\" }"), None);
}

#[test]
fn passive_health_and_drain_keys() {
    let c = parse(
        r#"[global]
max_fails = 3
fail_timeout = "30s"
drain_timeout = "0s"

[[virtual_service]]
listen = "127.0.0.1:8080"
real_server = [{ address = "127.0.0.1:18081" }]

[[virtual_service]]
listen = "127.0.0.1:8081"
max_fails = 0
real_server = [{ address = "127.0.0.1:18081" }]
"#,
        Path::new("halb.toml"),
    )
    .unwrap();
    assert_eq!(c.global.drain_timeout, Duration::ZERO);
    assert_eq!(
        (c.services[0].max_fails, c.services[0].fail_timeout),
        (3, Duration::from_secs(30))
    );
    assert_eq!(
        (c.services[1].max_fails, c.services[1].fail_timeout),
        (0, Duration::from_secs(30))
    );
    let d = parse(
        "[[virtual_service]]\nlisten = \"127.0.0.1:8080\"\nreal_server = [{ address = \"127.0.0.1:18081\" }]\n",
        Path::new("halb.toml"),
    )
    .unwrap();
    assert_eq!(d.global.drain_timeout, halb_config::DEFAULT_DRAIN_TIMEOUT);
    assert_eq!(d.services[0].max_fails, 1);
}

const SYNC_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// `[global.sync]`: the model, the key never serialized, its alerts.
#[test]
fn sync_parses() {
    let c = parse(
        &format!(
            r#"[global.sync]
name = "d1"
listen = "192.0.2.1:7947"
key = "{SYNC_KEY}"
peers = [{{ name = "d2", address = "192.0.2.2:7947" }}]
interval = "2s"
"#
        ),
        Path::new("halb.toml"),
    )
    .unwrap();
    let s = c.global.sync.clone().unwrap();
    assert_eq!(s.name.as_deref(), Some("d1"));
    assert_eq!(s.listen, "192.0.2.1:7947".parse().unwrap());
    assert_eq!(s.key.len(), 32);
    assert_eq!(s.key[1], 0x11);
    assert_eq!(
        s.peers,
        [halb_config::SyncPeer {
            name: "d2".into(),
            address: "192.0.2.2:7947".parse().unwrap()
        }]
    );
    assert_eq!(s.interval, Duration::from_secs(2));
    // The key is never in check-config --json.
    let json = serde_json::to_string(&c.global).unwrap();
    assert!(!json.contains("00112233"), "{json}");
    assert!(json.contains("(secret)"), "{json}");
    // A passphrase, the default interval, no name.
    let c = parse(
        r#"[global.sync]
listen = "192.0.2.1:7947"
key = "a passphrase of some length"
[[global.sync.peers]]
name = "d2"
address = "192.0.2.2:7947"
"#,
        Path::new("halb.toml"),
    )
    .unwrap();
    let s = c.global.sync.unwrap();
    assert_eq!(s.key, b"a passphrase of some length");
    assert_eq!(s.interval, halb_config::DEFAULT_SYNC_INTERVAL);
    assert_eq!(s.name, None);
    assert!(parse("", Path::new("halb.toml"))
        .unwrap()
        .global
        .sync
        .is_none());
}

#[test]
fn docs_sync_example_is_valid() {
    let doc = include_str!("../../../docs/configuration.md");
    let at = doc
        .find("### Membership: one config on both directors")
        .unwrap();
    let start = at + doc[at..].find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let c = parse(&doc[start..end], Path::new("halb.toml")).unwrap();
    let s = c.global.sync.unwrap();
    assert_eq!(s.peers[0].name, "lvs2");
    assert_eq!(s.interval, halb_config::DEFAULT_SYNC_INTERVAL);
}
