//! `[[vrrp_instance]]` / `[[vrrp_sync_group]]`: the model and the errors.
#![allow(clippy::unwrap_used)]

use halb_config::{parse, ConfigErrors, VrrpAuth};
use insta::assert_snapshot;
use std::path::Path;
use std::time::Duration;

fn errors(src: &str) -> ConfigErrors {
    match parse(src, Path::new("halb.toml")) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e,
    }
}

fn render(src: &str) -> String {
    let e = errors(src);
    let lines = src.split('\n').count();
    for err in &e {
        assert!(err.line >= 1 && err.line <= lines, "{err:?}");
        assert!(err.column >= 1 && err.end_column > err.column, "{err:?}");
        assert!(err.expected.is_some() && err.fix.is_some(), "{err:?}");
    }
    e.render()
}

const FULL: &str = r#"
[[virtual_service]]
name = "web"
listen = "192.0.2.100:80"
  [[virtual_service.real_server]]
  address = "192.0.2.21:80"

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
version = 3
priority = 150
advert_interval = "100ms"
preempt = true
preempt_delay = "0s"
accept = false
virtual_ipaddress = ["192.0.2.100/24", { address = "192.0.2.101/24", interface = "eth1", label = "eth1:vip" }]
unicast_source = "192.0.2.2"
unicast_peers = ["192.0.2.3"]
garp = { count = 5, interval = "10ms", refresh = "60s" }
track_interface = ["eth1"]
track_service = [{ service = "web", weight = -50 }]
track_ping = { hosts = ["192.0.2.1"], interval = "1s", timeout = "1s", fall = 3, rise = 2 }
vip_on_loopback_when_backup = false
notify_master = "/etc/halb/notify.sh master"
notify = "/etc/halb/notify.sh"

  [[vrrp_instance.track_script]]
  name = "check_haproxy"
  command = "/usr/local/bin/check.sh"
  interval = "2s"
  timeout = "1s"
  rise = 2
  fall = 2
  weight = -20

[[vrrp_instance]]
name = "VI_2"
interface = "eth0"
virtual_router_id = 52
version = 2
advert_interval = "1s"
virtual_ipaddress = ["198.51.100.10"]
auth = { type = "pass", password = "secret" }

[[vrrp_instance]]
name = "VI_6"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["2001:db8::100/64"]
auth = { type = "hmac-sha256", key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", replay_window = 4 }

[[vrrp_sync_group]]
name = "G1"
instances = ["VI_1", "VI_2"]
"#;

#[test]
fn full_instance_parses() {
    let c = parse(FULL, Path::new("halb.toml")).unwrap();
    assert_eq!(c.vrrp_instances.len(), 3);
    let v = &c.vrrp_instances[0];
    assert_eq!(v.name, "VI_1");
    assert_eq!(v.virtual_router_id, 51);
    assert_eq!(v.priority, 150);
    assert_eq!(v.advert_interval, Duration::from_millis(100));
    assert_eq!(v.virtual_ipaddress.len(), 2);
    assert_eq!(v.virtual_ipaddress[0].prefix_len, 24);
    assert_eq!(v.virtual_ipaddress[1].interface.as_deref(), Some("eth1"));
    assert_eq!(v.virtual_ipaddress[1].label.as_deref(), Some("eth1:vip"));
    assert_eq!(v.unicast_peers.len(), 1);
    assert_eq!(v.garp.refresh, Some(Duration::from_secs(60)));
    assert_eq!(v.track_service[0].weight, -50);
    assert_eq!(v.track_ping.as_ref().unwrap().fall, 3);
    assert_eq!(v.track_script[0].weight, -20);
    assert_eq!(v.track_script[0].command, ["/usr/local/bin/check.sh"]);
    assert_eq!(
        v.notify.master.as_deref(),
        Some(&["/etc/halb/notify.sh".to_owned(), "master".to_owned()][..])
    );
    let v2 = &c.vrrp_instances[1];
    assert_eq!(v2.version, 2);
    assert_eq!(v2.priority, 100);
    assert_eq!(v2.virtual_ipaddress[0].prefix_len, 32);
    assert_eq!(v2.auth, VrrpAuth::Pass("secret".into()));
    // Same VRID on the same interface is fine for the other family.
    match &c.vrrp_instances[2].auth {
        VrrpAuth::HmacSha256 { key, replay_window } => {
            assert_eq!(key.len(), 32);
            assert_eq!(*replay_window, 4);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.vrrp_sync_groups[0].instances, ["VI_1", "VI_2"]);
}

#[test]
fn vrrp_errors() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
name = "web"
listen = "192.0.2.100:80"

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 300
version = 2
advert_interval = "100ms"
virtual_ipaddress = ["192.0.2.100/24", "2001:db8::1"]
auth = { type = "pass", password = "much-too-long" }
track_service = [{ service = "wbe", weight = -50 }]
nopreempt = true

[[vrrp_instance]]
name = "VI_2"
interface = "eth0"
virtual_router_id = 51
advert_interval = "15ms"
virtual_ipaddress = ["192.0.2.101/33"]

[[vrrp_instance]]
name = "VI_3"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["192.0.2.102"]
auth = { type = "pass", password = "x" }
unicast_source = "192.0.2.2"

[[vrrp_instance]]
name = "VI_4"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["192.0.2.103"]
auth = { type = "hmac-sha256", key = "short" }

[[vrrp_sync_group]]
name = "G1"
instances = ["VI_3", "VI_9"]
"#
    ));
}

#[test]
fn instance_without_required_keys() {
    assert_snapshot!(render(
        r#"[[vrrp_instance]]
priority = 0
"#
    ));
}

#[test]
fn vrrp_cross_errors() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
name = "web"
listen = "192.0.2.100:80"

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["192.0.2.100/24"]
track_service = [{ service = "wbe", weight = -50 }]

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["192.0.2.101/24"]

[[vrrp_sync_group]]
name = "G1"
instances = ["VI_1", "VI_9"]
"#
    ));
}

#[test]
fn director_examples_match_the_contract() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for (file, prio) in [("vrrp-director1.toml", 150), ("vrrp-director2.toml", 100)] {
        let c = halb_config::load(&dir.join(file)).unwrap();
        let v = &c.vrrp_instances[0];
        assert_eq!(v.interface, "eth0");
        assert_eq!(v.virtual_router_id, 51);
        assert_eq!(v.version, 3);
        assert_eq!(v.advert_interval, Duration::from_millis(100));
        assert_eq!(v.priority, prio);
        assert!(v.preempt);
        assert_eq!(v.virtual_ipaddress[0].address.to_string(), "192.0.2.100");
        assert_eq!(v.virtual_ipaddress[0].prefix_len, 24);
        assert_eq!(c.services.len(), 1);
        assert_eq!(c.services[0].reals.len(), 2);
    }
}

#[test]
fn docs_vrrp_example_parses() {
    let doc = include_str!("../../../docs/configuration.md");
    let from = doc.find("## Failover (VRRP)").unwrap();
    let start = from + doc[from..].find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let c = parse(&doc[start..end], Path::new("doc.toml")).unwrap();
    let v = &c.vrrp_instances[0];
    assert_eq!(v.track_script[0].name, "check_haproxy");
    assert_eq!(
        v.notify.any.as_deref(),
        Some(&["/etc/halb/notify.sh".to_owned()][..])
    );
    assert_eq!(c.vrrp_sync_groups[0].instances, ["VI_1"]);
}

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn paths_parse() {
    let src = format!(
        r#"[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["192.0.2.100/24"]
auth = {{ type = "hmac-sha256", key = "{KEY}" }}
paths = [
  {{ interface = "eth1", unicast_source = "198.51.100.1", unicast_peer = "198.51.100.2" }},
  {{ interface = "eth2", unicast_peer = "203.0.113.2" }},
]
"#
    );
    let c = parse(&src, Path::new("halb.toml")).unwrap();
    let p = &c.vrrp_instances[0].paths;
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].interface, "eth1");
    assert_eq!(p[0].unicast_source, Some("198.51.100.1".parse().unwrap()));
    assert_eq!(
        p[0].unicast_peer,
        "198.51.100.2".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(p[1].unicast_source, None);
    // Without `paths`: none (one path, as keepalived).
    let c = parse(FULL, Path::new("halb.toml")).unwrap();
    assert!(c.vrrp_instances.iter().all(|v| v.paths.is_empty()));
}

#[test]
fn paths_errors() {
    assert_snapshot!(render(&format!(
        r#"[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["192.0.2.100/24"]
paths = [{{ interface = "eth1", unicast_peer = "198.51.100.2" }}]

[[vrrp_instance]]
name = "VI_2"
interface = "eth0"
virtual_router_id = 52
virtual_ipaddress = ["192.0.2.101/24"]
auth = {{ type = "hmac-sha256", key = "{KEY}" }}
paths = [
  {{ interface = "eth0", unicast_peer = "198.51.100.2" }},
  {{ interface = "eth1" }},
  {{ interface = "eth2", unicast_peer = "2001:db8::2", peer = "x" }},
]
"#
    )));
}
