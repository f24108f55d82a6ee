//! The rendered errors for bad configurations: what an operator sees.
#![allow(clippy::unwrap_used)]

use halb_config::{parse, ConfigErrors};
use insta::assert_snapshot;
use std::path::Path;

fn errors(src: &str) -> ConfigErrors {
    match parse(src, Path::new("halb.toml")) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e,
    }
}

fn render(src: &str) -> String {
    let e = errors(src);
    // Every error has a place inside the file and says how to fix it.
    let lines = src.split('\n').count();
    for err in &e {
        assert!(err.line >= 1 && err.line <= lines, "{err:?}");
        assert!(err.column >= 1 && err.end_column > err.column, "{err:?}");
        assert!(err.expected.is_some() && err.fix.is_some(), "{err:?}");
    }
    e.render()
}

#[test]
fn syntax_unclosed_string() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
listen = "127.0.0.1:80
"#
    ));
}

#[test]
fn syntax_unquoted_value() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
listen = "127.0.0.1:80"
scheduler = wrr
"#
    ));
}

#[test]
fn syntax_bad_boolean() {
    assert_snapshot!(render("[global]\nworkers = tru\n"));
}

#[test]
fn syntax_duplicate_key() {
    assert_snapshot!(render(
        r#"[global]
workers = 2
connect_timeout = "1s"
workers = 4
"#
    ));
}

#[test]
fn syntax_duplicate_table() {
    assert_snapshot!(render("[global]\nworkers = 2\n\n[global]\nworkers = 4\n"));
}

#[test]
fn syntax_header_and_eof() {
    assert_snapshot!(render("[global\nworkers = 2\n"));
    assert_snapshot!("syntax_missing_value", render("[global]\nworkers ="));
}

#[test]
fn syntax_sub_table_before_its_array() {
    assert_snapshot!(render(
        r#"[virtual_service.persistence]
timeout = "5m"

[[virtual_service]]
listen = "127.0.0.1:80"
"#
    ));
}

#[test]
fn unknown_key_with_suggestion() {
    assert_snapshot!(render(
        r#"[global]
workerz = 2

[[virtual_service]]
listen = "127.0.0.1:80"
schedular = "wrr"

  [[virtual_service.real_server]]
  adress = "127.0.0.1:8080"
  wieght = 2
  colour = "blue"
"#
    ));
}

#[test]
fn unknown_key_in_the_wrong_table() {
    assert_snapshot!(render(
        r#"workers = 2

[global]
scheduler = "rr"

[[virtual_services]]
listen = "127.0.0.1:81"

[[virtual_service]]
address = "127.0.0.1:80"
weight = 3
sorry_server = "127.0.0.1:9999"
port = 80

  [[virtual_service.real_server]]
  address = "127.0.0.1:8080"
  port = 8080
  scheduler = "rr"
"#
    ));
}

#[test]
fn unknown_scheduler() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
name = "web"
listen = "127.0.0.1:80"
scheduler = "wrrr"

[[virtual_service]]
name = "dns"
listen = "127.0.0.1:53"
scheduler = "round-robin"
protocol = "TCP"
on_down = "drain"
"#
    ));
}

#[test]
fn wrong_types() {
    assert_snapshot!(render(
        r#"[global]
workers = true
control_socket = 5
connect_timeout = 1.5
on_down = 0

[[virtual_service]]
name = "web"
listen = 8080
proxy_protocol = 2
scheduler_flags = "fallback"
persistence = true

  [[virtual_service.real_server]]
  address = "127.0.0.1:8080"
  weight = "5"
  upper_threshold = 1.0
  lower_threshold = [1]
"#
    ));
}

#[test]
fn weight_out_of_range() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
name = "web"
listen = "127.0.0.1:80"

  [[virtual_service.real_server]]
  address = "127.0.0.1:8080"
  weight = 70000

  [[virtual_service.real_server]]
  address = "127.0.0.1:8081"
  weight = -1
"#
    ));
}

#[test]
fn other_ranges() {
    assert_snapshot!(render(
        r#"[global]
workers = 5000
check_concurrency = -1
connect_attempts = 0

[[virtual_service]]
listen = "127.0.0.1:80"
connect_attempts = 1000

  [virtual_service.persistence]
  prefix_v6 = 129

  [[virtual_service.real_server]]
  address = "127.0.0.1:8080"
  upper_threshold = 5000000000
"#
    ));
}

#[test]
fn bad_addresses() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
listen = "127.0.0.1"

  [[virtual_service.real_server]]
  address = "localhost:8080"

  [[virtual_service.real_server]]
  address = "10.0.0.300:80"

  [[virtual_service.real_server]]
  address = "10.0.0.1:0"

  [[virtual_service.real_server]]
  address = "10.0.0.1:99999"

  [[virtual_service.real_server]]
  address = "10.0.0.1:http"

[[virtual_service]]
listen = "::1:80"

[[virtual_service]]
listen = "2001:db8::1:443"

[[virtual_service]]
listen = "[::1]"

[[virtual_service]]
listen = "[127.0.0.1]:80"

[[virtual_service]]
listen = "tcp://127.0.0.1:80"

[[virtual_service]]
listen = ":80"
"#
    ));
}

#[test]
fn mixed_families() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
name = "v6"
listen = "[::]:80"
fallback = "127.0.0.1:9999"

  [[virtual_service.real_server]]
  address = "[2001:db8::10]:80"

  [[virtual_service.real_server]]
  address = "192.0.2.10:80"
"#
    ));
}

#[test]
fn duplicates() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
name = "web"
listen = "127.0.0.1:80"

  [[virtual_service.real_server]]
  address = "127.0.0.1:8080"

  [[virtual_service.real_server]]
  address = "127.0.0.1:8081"

  [[virtual_service.real_server]]
  address = "127.0.0.1:8080"

[[virtual_service]]
name = "web"
listen = "127.0.0.1:443"

[[virtual_service]]
name = "web-too"
listen = "127.0.0.1:80"

[[virtual_service]]
listen = "127.0.0.1:80"
protocol = "udp"

[[virtual_service]]
listen = "127.0.0.1:80"
protocol = "udp"
"#
    ));
}

#[test]
fn thresholds() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
name = "web"
listen = "127.0.0.1:80"

  [[virtual_service.real_server]]
  address = "127.0.0.1:8080"
  upper_threshold = 50
  lower_threshold = 100

  [[virtual_service.real_server]]
  address = "127.0.0.1:8081"
  upper_threshold = 50
  lower_threshold = 50

  [[virtual_service.real_server]]
  address = "127.0.0.1:8082"
  lower_threshold = 10
"#
    ));
}

#[test]
fn scheduler_flags() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
name = "explicit"
listen = "127.0.0.1:80"
scheduler = "wrr"
scheduler_flags = ["fallback"]

[[virtual_service]]
name = "default"
listen = "127.0.0.1:81"
scheduler_flags = ["port"]

[[virtual_service]]
name = "sh"
listen = "127.0.0.1:82"
scheduler = "sh"
scheduler_flags = ["sh-fallback", "prot", "port", "port"]
"#
    ));
}

#[test]
fn proxy_protocol() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
name = "dns"
listen = "127.0.0.1:53"
protocol = "udp"
proxy_protocol = "v2"

[[virtual_service]]
name = "web"
listen = "127.0.0.1:80"
proxy_protocol = "v3"
"#
    ));
}

#[test]
fn bad_durations() {
    assert_snapshot!(render(
        r#"[global]
connect_timeout = "3 sec"
idle_timeout = "1.5m"
udp_timeout = "-1s"

[[virtual_service]]
listen = "127.0.0.1:80"
connect_timeout = "3"
idle_timeout = "1m30s"
udp_timeout = "10x"

[[virtual_service]]
listen = "127.0.0.1:81"
connect_timeout = 0
udp_timeout = "500ms"
idle_timeout = "400d"

  [virtual_service.persistence]
  timeout = "1500ms"
"#
    ));
}

#[test]
fn bad_netmasks() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
listen = "127.0.0.1:80"
persistence = { netmask = "255.0.255.0" }

[[virtual_service]]
listen = "127.0.0.1:81"
persistence = { netmask = "24" }

[[virtual_service]]
listen = "127.0.0.1:82"
persistence = { netmask = 33 }

[[virtual_service]]
listen = "127.0.0.1:83"
persistence = { netmask = "ffff:ffff::", mask = 24 }
"#
    ));
}

#[test]
fn structure() {
    assert_snapshot!(render(
        r#"[[global]]
workers = 2

[virtual_service]
listen = "127.0.0.1:80"
"#
    ));
    assert_snapshot!(
        "structure_real_server",
        render(
            r#"[[virtual_service]]
listen = "127.0.0.1:80"
real_server = ["127.0.0.1:8080", { address = "127.0.0.1:8081" }, 3]

[[virtual_service]]
listen = "127.0.0.1:81"

  [virtual_service.real_server]
  address = "127.0.0.1:8080"

[[real_server]]
address = "127.0.0.1:8080"
"#
        )
    );
}

#[test]
fn missing_required_keys() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
name = "web"

  [[virtual_service.real_server]]
  weight = 2

[[virtual_service]]  # no listen here either
scheduler = "rr"
"#
    ));
}

#[test]
fn names_sockets_and_loops() {
    assert_snapshot!(render(
        r#"[global]
control_socket = "halb.sock"

[[virtual_service]]
name = ""
listen = "127.0.0.1:80"

[[virtual_service]]
name = " web "
listen = "127.0.0.1:81"
fallback = "127.0.0.1:81"

  [[virtual_service.real_server]]
  address = "127.0.0.1:81"
"#
    ));
}

#[test]
fn inline_tables_get_paths_too() {
    assert_snapshot!(render(
        r#"virtual_service = [
  { name = "a", listen = "127.0.0.1:80", real_server = [{ address = "127.0.0.1:8080", weight = 1e3 }] },
  { name = "b", listen = "127.0.0.1:81", scheduler = "lcc" },
]
"#
    ));
}

/// Everything wrong at once: all of it reported, in file order.
#[test]
fn many_errors_in_one_file() {
    let src = r#"# halb.toml
[global]
workers = -1
on_down = "remov"

[[virtual_service]]
name = "web"
listen = "127.0.0.1:8080"
scheduler = "wrrr"
scheduler_flags = ["fallback"]
proxy_protocol = "v2"
timeuot = "3s"

  [virtual_service.persistence]
  netmask = "255.255.0.255"

  [[virtual_service.real_server]]
  address = "[::1]:8081"
  weight = 70000

  [[virtual_service.real_server]]
  address = "127.0.0.1:8082"
  upper_threshold = 10
  lower_threshold = 20

[[virtual_service]]
name = "web"
listen = "127.0.0.1:8080"
protocol = "udp"
proxy_protocol = "v1"
"#;
    let e = errors(src);
    assert_eq!(e.len(), 10, "{e}");
    let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    assert_snapshot!(render(src));
    assert!(e
        .render_with_outcome("nothing was started")
        .ends_with("halb: 10 errors in halb.toml; nothing was started\n"));
}

#[test]
fn structured_fields() {
    let e = errors(
        "[[virtual_service]]\nname = \"web\"\nlisten = \"127.0.0.1:80\"\nscheduler = \"wrrr\"\n",
    );
    assert_eq!(e.len(), 1);
    let err = &e.errors[0];
    assert_eq!(err.file, Path::new("halb.toml"));
    assert_eq!((err.line, err.column, err.end_column), (4, 13, 19));
    assert_eq!(err.key, "virtual_service \"web\".scheduler");
    assert_eq!(err.message, "unknown scheduler \"wrrr\"");
    assert_eq!(
        err.expected.as_deref(),
        Some("one of rr, wrr, lc, wlc, sed, nq, sh, dh, lblc, lblcr, mh, fo, ovf")
    );
    assert_eq!(err.fix.as_deref(), Some("did you mean \"wrr\"?"));
    assert_eq!(err.source_line.as_deref(), Some("scheduler = \"wrrr\""));
    assert_eq!(e.summary(), "1 error in halb.toml");
}

#[test]
fn ipvs_keys_on_a_proxy_service_and_ipvsadm_synonyms() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
listen = "192.0.2.10:80"
protocol = "sctp"
  [[virtual_service.real_server]]
  address = "198.51.100.1:80"
  forward = "route"

[[virtual_service]]
data_plane = "kernel"
listen = "192.0.2.10:81"
  [[virtual_service.real_server]]
  address = "198.51.100.1:80"
  forward = "nat"
  [[virtual_service.real_server]]
  address = "198.51.100.2:80"
  forward = "gate"
  tunnel_type = "gre"
"#
    ));
}

#[test]
fn ipvs_service_errors() {
    assert_snapshot!(render(
        r#"[global.ipvs]
timeout_tcp = "0s"
foreign = "delete"
[global.ipvs.sync_daemon]
state = "primary"
group = "192.0.2.1"
sync_id = 300
max_len = 0

[[virtual_service]]
data_plane = "ipvs"
listen = "192.0.2.10:80"
fwmark = 3
one_packet = true
proxy_protocol = "v2"
fallback = "127.0.0.1:9999"
  [[virtual_service.real_server]]
  address = "198.51.100.1:80"
  forward = "proxy"
  [[virtual_service.real_server]]
  address = "198.51.100.2:80"
  forward = "tunnel"
  tunnel_type = "gue"
"#
    ));
}

#[test]
fn sync_daemon_vrrp_instance_errors() {
    // Both a fixed state and a followed instance; then an unknown instance.
    assert_snapshot!(render(
        r#"[global.ipvs.sync_daemon]
state = "master"
vrrp_instance = "VI_1"
interface = "eth0"
"#
    ));
    assert_snapshot!(render(
        r#"[global.ipvs.sync_daemon]
vrrp_instance = "VI_2"
interface = "eth0"

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = 150
virtual_ipaddress = ["192.0.2.100/24"]
"#
    ));
}

#[test]
fn tunnel_checksum_errors() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
data_plane = "ipvs"
listen = "192.0.2.10:80"
  [[virtual_service.real_server]]
  address = "198.51.100.1:80"
  forward = "tunnel"
  tunnel_checksum = "csum"
  [[virtual_service.real_server]]
  address = "198.51.100.2:80"
  forward = "tunnel"
  tunnel_type = "gre"
  tunnel_checksum = "remcsum"
  [[virtual_service.real_server]]
  address = "198.51.100.3:80"
  forward = "tunnel"
  tunnel_type = "gre"
  tunnel_checksum = "checksummed"
"#
    ));
}

#[test]
fn udp_max_flows_out_of_range_or_on_ipvs() {
    let src = r#"[global]
udp_max_flows = -1

[[virtual_service]]
name = "dns"
listen = "127.0.0.1:53"
protocol = "udp"
udp_max_flows = 0

[[virtual_service]]
name = "kdns"
listen = "127.0.0.1:54"
protocol = "udp"
data_plane = "ipvs"
udp_max_flows = 100

[[virtual_service]]
name = "big"
listen = "127.0.0.1:55"
protocol = "udp"
udp_max_flows = "many"
"#;
    let text = render(src);
    let e = errors(src);
    let at: Vec<(usize, usize, &str)> = e
        .iter()
        .map(|e| (e.line, e.column, e.key.as_str()))
        .collect();
    assert_eq!(e.len(), 4, "{text}");
    assert_eq!(at[0].0, 2, "{text}");
    assert!(at[0].2.ends_with("udp_max_flows"), "{text}");
    assert_eq!(at[1].0, 8, "{text}");
    assert_eq!(at[2].0, 15, "{text}");
    assert_eq!(at[3].0, 21, "{text}");
    assert!(at.iter().all(|&(_, col, _)| col == 17), "{text}");
    assert!(text.contains("out of range"), "{text}");
    assert!(text.contains("userspace-proxy setting"), "{text}");
}

#[test]
fn a_non_loopback_dashboard_needs_a_token() {
    let out = render(
        "[global]\nhttp_listen = \"192.0.2.1:9090\"\n\n[[virtual_service]]\nlisten = \"127.0.0.1:80\"\nreal_server = [{ address = \"127.0.0.1:81\" }]\n",
    );
    assert!(out.contains("halb.toml:2:15"), "{out}");
    assert!(
        out.contains("is not a loopback address and no http_token is set"),
        "{out}"
    );
    assert!(out.contains("openssl rand -hex 24"), "{out}");
    // With a token, or on loopback: accepted.
    let ok = "[global]\nhttp_listen = \"192.0.2.1:9090\"\nhttp_token = \"0123456789abcdef0123\"\n\n[[virtual_service]]\nlisten = \"127.0.0.1:80\"\nreal_server = [{ address = \"127.0.0.1:81\" }]\n";
    let c = halb_config::parse(ok, std::path::Path::new("t.toml")).unwrap();
    assert_eq!(c.global.http_token.as_deref(), Some("0123456789abcdef0123"));
    let lo = "[global]\nhttp_listen = \"[::1]:9090\"\n\n[[virtual_service]]\nlisten = \"127.0.0.1:80\"\nreal_server = [{ address = \"127.0.0.1:81\" }]\n";
    assert!(halb_config::parse(lo, std::path::Path::new("t.toml")).is_ok());
}

#[test]
fn a_short_token_is_refused_and_never_quoted() {
    let out = render(
        "[global]\nhttp_listen = \"127.0.0.1:9090\"\nhttp_token = \"s3cr3t-abc\"\n\n[[virtual_service]]\nlisten = \"127.0.0.1:80\"\nreal_server = [{ address = \"127.0.0.1:81\" }]\n",
    );
    let out2 = render(
        "[global]\nhttp_token = \"short1\"\n\n[[virtual_service]]\nlisten = \"127.0.0.1:80\"\nreal_server = [{ address = \"127.0.0.1:81\" }]\n",
    );
    assert!(
        out.contains("http_token has 10 characters") && !out.contains("s3cr3t"),
        "{out}"
    );
    assert!(
        out2.contains("http_token has 6 characters; it needs 16 to 256"),
        "{out2}"
    );
    assert!(!out2.contains("short1"), "the token is quoted: {out2}");
}

#[test]
fn fallback_forward_errors() {
    // Without fallback; on a proxy service; an unknown method.
    assert_snapshot!(render(
        r#"[[virtual_service]]
data_plane = "ipvs"
listen = "192.0.2.10:80"
fallback_forward = "masq"
  [[virtual_service.real_server]]
  address = "198.51.100.1:80"

[[virtual_service]]
listen = "192.0.2.10:81"
fallback = "198.51.100.9:81"
fallback_forward = "route"
  [[virtual_service.real_server]]
  address = "198.51.100.1:81"

[[virtual_service]]
data_plane = "ipvs"
listen = "192.0.2.10:82"
fallback = "198.51.100.9:82"
fallback_forward = "nat!"
  [[virtual_service.real_server]]
  address = "198.51.100.1:82"
"#
    ));
}

/// `[global.sync]`: each key checked, with a fix.
#[test]
fn sync_errors() {
    assert_snapshot!(render(
        r#"[global.sync]
name = "d 1"
listen = 7947
key = "short"
peer = "192.0.2.2"
peers = [
  { name = "d2", address = "192.0.2.2:7947" },
  { name = "d2", address = "192.0.2.3" },
  { address = "192.0.2.4:7947", port = 1 },
]
interval = "10ms"
"#
    ));
    assert_snapshot!(
        "sync_missing_keys",
        render("[global]\nsync = { peers = [] }\n")
    );
    assert_snapshot!(
        "sync_not_a_table",
        render("[global]\nsync = \"192.0.2.2\"\n")
    );
}

#[test]
fn real_server_on_down_errors() {
    // Without a check anywhere; an unknown value.
    assert_snapshot!(render(
        r#"[[virtual_service]]
data_plane = "ipvs"
listen = "192.0.2.10:80"
  [[virtual_service.real_server]]
  address = "198.51.100.1:80"
  on_down = "quiescent"

[[virtual_service]]
data_plane = "ipvs"
listen = "192.0.2.10:81"
  [virtual_service.check]
  type = "tcp"
  [[virtual_service.real_server]]
  address = "198.51.100.1:81"
  on_down = "drop"
"#
    ));
}
