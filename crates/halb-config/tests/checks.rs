//! Health-check tables: how the three levels merge into one check per
//! real server, and the errors an operator sees.
#![allow(clippy::unwrap_used)]

use halb_config::{parse, Config, ConfigErrors};
use halb_health::{
    ClientCert, DnsSpec, DnsType, ExternalSpec, FtpSpec, HttpMethod, HttpSpec, InitialState,
    LdapSpec, MailSpec, ProbeSpec, RadiusSpec, RedisSpec, SimpleTcpSpec, SmtpSpec, SqlSpec, Timing,
    TlsSpec, UdpSpec,
};
use insta::assert_snapshot;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn ok(src: &str) -> Config {
    match parse(src, Path::new("/etc/halb/halb.toml")) {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

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

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn no_check_table_means_no_checks() {
    let cfg = ok("[[virtual_service]]\nlisten = \"127.0.0.1:80\"\nreal_server = [{ address = \"127.0.0.1:81\" }]\n");
    assert!(cfg.checks.is_empty());
}

#[test]
fn levels_merge_key_by_key() {
    let cfg = ok(r#"
[global]
check = { interval = "2s", timeout = "1s", rise = 3, path = "/global" }

[[virtual_service]]
name = "web"
listen = "127.0.0.1:8080"

  [virtual_service.check]
  type = "http"
  fall = 4
  host = "www.example.com"
  expect_status = [200, "300-399"]

  [[virtual_service.real_server]]
  address = "127.0.0.1:18081"

  [[virtual_service.real_server]]
  address = "127.0.0.1:18082"
  check = { port = 9000, path = "/special", rise = 1, initial = "fully_up", warmup = "30s" }

[[virtual_service]]
name = "db"
listen = "127.0.0.1:3306"

  [[virtual_service.real_server]]
  address = "127.0.0.1:13306"

  [[virtual_service.real_server]]
  address = "127.0.0.1:13307"
  check = { address = "127.0.0.2:80", type = "off" }
"#);
    assert_eq!(cfg.checks.len(), 4);
    let web = cfg.services[0].key();
    let a = &cfg.check(web, addr("127.0.0.1:18081")).unwrap().spec;
    assert_eq!(a.target, addr("127.0.0.1:18081"));
    assert_eq!(
        a.timing,
        Timing {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 3,
            fall: 4,
            delay_before_retry: Duration::from_secs(2),
            warmup: Duration::ZERO,
            initial: InitialState::Down,
        }
    );
    assert_eq!(
        a.probe,
        ProbeSpec::Http(HttpSpec {
            host: Some("www.example.com".into()),
            expect_status: vec![200..=200, 300..=399],
            ..HttpSpec::get("/global")
        })
    );
    let b = &cfg.check(web, addr("127.0.0.1:18082")).unwrap().spec;
    assert_eq!(b.target, addr("127.0.0.1:9000"));
    assert_eq!((b.timing.rise, b.timing.fall), (1, 4));
    assert_eq!(b.timing.initial, InitialState::FullyUp);
    assert_eq!(b.timing.warmup, Duration::from_secs(30));
    assert!(matches!(&b.probe, ProbeSpec::Http(h) if h.path == "/special"));

    // The global table reaches services without a table of their own.
    // With no type anywhere, the port picks the probe (3306: tcp), but
    // http keys (here the global `path`) make it an http check.
    let db = cfg.services[1].key();
    let c = &cfg.check(db, addr("127.0.0.1:13306")).unwrap().spec;
    assert!(matches!(&c.probe, ProbeSpec::Http(h) if h.path == "/global"));
    let d = &cfg.check(db, addr("127.0.0.1:13307")).unwrap().spec;
    assert_eq!(d.probe, ProbeSpec::Off);
    assert_eq!(d.target, addr("127.0.0.2:80"));
}

#[test]
fn default_probe_by_port_and_inference() {
    let cfg = ok(r#"
[global]
check = {}

[[virtual_service]]
listen = "127.0.0.1:8080"
real_server = [
  { address = "127.0.0.1:80" },
  { address = "127.0.0.1:443", check = { sni = "example.com", verify = true, ca_file = "ca.pem", client_cert = "c.pem", client_key = "/k.pem" } },
  { address = "127.0.0.1:5000" },
  { address = "127.0.0.1:5001", check = { command = ["/usr/local/bin/check", "--fast"], dynamic_weight = true } },
  { address = "127.0.0.1:5002", check = { method = "GET", body_md5 = "5D41402ABC4B2A76B9719D911017C592" } },
  { address = "127.0.0.1:5003", check = { method = "HEAD" } },
]
"#);
    let probes: Vec<&ProbeSpec> = cfg.checks.iter().map(|c| &c.spec.probe).collect();
    assert_eq!(probes[0], &ProbeSpec::Http(HttpSpec::get("/")));
    assert_eq!(
        probes[1],
        &ProbeSpec::Http(HttpSpec {
            tls: Some(TlsSpec {
                server_name: Some("example.com".into()),
                verify: true,
                ca_file: Some(PathBuf::from("/etc/halb/ca.pem")),
                client_cert: Some(ClientCert {
                    cert_file: PathBuf::from("/etc/halb/c.pem"),
                    key_file: PathBuf::from("/k.pem"),
                }),
            }),
            ..HttpSpec::get("/")
        })
    );
    assert_eq!(probes[2], &ProbeSpec::Tcp);
    assert_eq!(
        probes[3],
        &ProbeSpec::External(ExternalSpec {
            program: PathBuf::from("/usr/local/bin/check"),
            args: vec!["--fast".into()],
            service: Some(addr("127.0.0.1:8080")),
            dynamic_weight: true,
            pass_addresses: true,
        })
    );
    match probes[4] {
        ProbeSpec::Http(h) => {
            assert_eq!(h.method, HttpMethod::Get);
            assert_eq!(h.body_md5.unwrap()[0], 0x5d);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(probes[5], ProbeSpec::Http(h) if h.method == HttpMethod::Head));
    // Defaults: interval 5s, timeout 5s, rise 1, fall 1.
    assert_eq!(cfg.checks[0].spec.timing, Timing::default());
}

#[test]
fn check_type_errors() {
    assert_snapshot!(render(
        r#"[global]
check = { type = "htp", interval = "1.5s", rise = 0, initial = "sideways" }

[[virtual_service]]
listen = "127.0.0.1:8080"

  [virtual_service.check]
  type = "tcp"
  path = "/health"
  port = 70000
  checktype = "http"

  [[virtual_service.real_server]]
  address = "127.0.0.1:18081"
  check = { type = "https", expect_status = [99, "300-200"], body_md5 = "abc", verify = "yes" }
"#
    ));
}

#[test]
fn check_value_errors() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
listen = "127.0.0.1:8080"
check = "http"

  [[virtual_service.real_server]]
  address = "127.0.0.1:18081"
  check = { type = "external", dynamic_weight = true }

  [[virtual_service.real_server]]
  address = "127.0.0.1:18082"
  check = { command = "/bin/check --fast", path = "health", host = "a b" }

  [[virtual_service.real_server]]
  address = "127.0.0.1:18083"
  check = { address = "127.0.0.1:80", port = 81, client_cert = "c.pem", method = "POST" }

  [[virtual_service.real_server]]
  address = "127.0.0.1:18084"
  check = { type = "https", client_key = "k.pem", expect_status = [], body_contains = "" }
"#
    ));
}

#[test]
fn inherited_problem_is_reported_once() {
    let e = errors(
        r#"[global]
check = { type = "external" }

[[virtual_service]]
listen = "127.0.0.1:8080"
real_server = [{ address = "127.0.0.1:1" }, { address = "127.0.0.1:2" }]

[[virtual_service]]
listen = "127.0.0.1:8081"
real_server = [{ address = "127.0.0.1:3" }]
"#,
    );
    assert_eq!(e.len(), 1, "{e}");
    assert_eq!(e.errors[0].line, 2);
}

#[test]
fn check_keys_outside_a_check_table() {
    assert_snapshot!(render(
        r#"[global]
interval = "1s"

[[virtual_service]]
listen = "127.0.0.1:8080"
rise = 2

  [[virtual_service.real_server]]
  address = "127.0.0.1:18081"
  body_contains = "OK"
"#
    ));
}

#[test]
fn protocol_probes() {
    let cfg = ok(r#"
[global]
check = {}

[[virtual_service]]
listen = "127.0.0.1:8080"
real_server = [
  { address = "127.0.0.1:6379" },
  { address = "127.0.0.1:25" },
  { address = "127.0.0.1:587" },
  { address = "127.0.0.1:53" },
  { address = "127.0.0.1:6380", check = { type = "redis", username = "hc", password = "s3cret" } },
  { address = "127.0.0.1:2525", check = { type = "smtp", helo_name = "lb1.example.com" } },
  { address = "127.0.0.1:5353", check = { type = "dns", query_name = "www.example.com", query_type = "AAAA" } },
  { address = "127.0.0.1:9000", check = { type = "udp", payload = "ping", reply_contains = "pong" } },
  { address = "127.0.0.1:9001", check = { type = "udp" } },
  { address = "127.0.0.1:9002", check = { query_type = "MX" } },
  { address = "127.0.0.1:9003", check = { password = "p" } },
]
"#);
    let probes: Vec<&ProbeSpec> = cfg.checks.iter().map(|c| &c.spec.probe).collect();
    assert_eq!(probes[0], &ProbeSpec::Redis(RedisSpec::default()));
    assert_eq!(probes[1], &ProbeSpec::Smtp(SmtpSpec::default()));
    assert_eq!(
        probes[2],
        // 587 is submission: STARTTLS when offered (ldirectord).
        &ProbeSpec::Smtp(SmtpSpec::submission())
    );
    assert_eq!(probes[3], &ProbeSpec::Dns(DnsSpec::default()));
    assert_eq!(
        probes[4],
        &ProbeSpec::Redis(RedisSpec {
            username: Some("hc".into()),
            password: Some("s3cret".into()),
        })
    );
    assert_eq!(
        probes[5],
        &ProbeSpec::Smtp(SmtpSpec {
            helo_name: "lb1.example.com".into(),
            starttls: None,
        })
    );
    assert_eq!(
        probes[6],
        &ProbeSpec::Dns(DnsSpec {
            query_name: "www.example.com".into(),
            query_type: DnsType::Aaaa,
        })
    );
    assert_eq!(
        probes[7],
        &ProbeSpec::Udp(UdpSpec {
            payload: b"ping".to_vec(),
            expect_reply: true,
            reply_contains: Some(b"pong".to_vec()),
        })
    );
    assert_eq!(probes[8], &ProbeSpec::Udp(UdpSpec::default()));
    assert_eq!(
        probes[9],
        &ProbeSpec::Dns(DnsSpec {
            query_name: ".".into(),
            query_type: DnsType::Mx,
        })
    );
    assert_eq!(
        probes[10],
        &ProbeSpec::Redis(RedisSpec {
            username: None,
            password: Some("p".into()),
        })
    );
}

#[test]
fn redis_password_inherited() {
    let cfg = ok(r#"
[global]
check = { password = "s3cret" }

[[virtual_service]]
listen = "127.0.0.1:6379"
check = { username = "hc" }
real_server = [{ address = "127.0.0.1:16379" }]
"#);
    assert_eq!(
        cfg.checks[0].spec.probe,
        ProbeSpec::Redis(RedisSpec {
            username: Some("hc".into()),
            password: Some("s3cret".into()),
        })
    );
}

#[test]
fn protocol_check_errors() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
listen = "127.0.0.1:6379"

  [virtual_service.check]
  type = "redis"
  username = "hc"
  helo_name = "lb1"

  [[virtual_service.real_server]]
  address = "127.0.0.1:16379"
  check = { type = "dns", query_name = "a..b", query_type = "PTR", payload = "x" }

  [[virtual_service.real_server]]
  address = "127.0.0.1:16380"
  check = { type = "udp", expect_reply = false, reply_contains = "pong", requirepass = "x" }

  [[virtual_service.real_server]]
  address = "127.0.0.1:16381"
"#
    ));
}

#[test]
fn database_probes_and_body_regex() {
    let cfg = ok(r#"
[[virtual_service]]
listen = "127.0.0.1:8080"
check = { username = "hc", password = "s3cret" }
real_server = [
  { address = "127.0.0.1:3306" },
  { address = "127.0.0.1:5432", check = { database = "app", query = "SELECT 1" } },
  { address = "127.0.0.1:3307", check = { type = "mysql", query = "SELECT 1" } },
  { address = "127.0.0.1:5433", check = { type = "pgsql" } },
  { address = "127.0.0.1:80", check = { body_regex = "^ok|fine$" } },
]

[[virtual_service]]
listen = "127.0.0.1:8081"
check = {}
real_server = [
  { address = "127.0.0.1:3306" },
  { address = "127.0.0.1:5432" },
  { address = "127.0.0.1:9", check = { type = "icmp" } },
]
"#);
    let probes: Vec<&ProbeSpec> = cfg.checks.iter().map(|c| &c.spec.probe).collect();
    let login = SqlSpec {
        username: Some("hc".into()),
        password: Some("s3cret".into()),
        database: None,
        query: None,
    };
    assert_eq!(probes[0], &ProbeSpec::Mysql(login.clone()));
    assert_eq!(
        probes[1],
        &ProbeSpec::Pgsql(SqlSpec {
            database: Some("app".into()),
            query: Some("SELECT 1".into()),
            ..login.clone()
        })
    );
    assert_eq!(
        probes[2],
        &ProbeSpec::Mysql(SqlSpec {
            query: Some("SELECT 1".into()),
            ..login.clone()
        })
    );
    assert_eq!(probes[3], &ProbeSpec::Pgsql(login));
    match probes[4] {
        ProbeSpec::Http(h) => {
            let re = h.body_regex.as_ref().unwrap();
            assert_eq!(re.as_str(), "^ok|fine$");
            assert!(re.is_match(b"all fine") && !re.is_match(b"broken"));
        }
        other => panic!("{other:?}"),
    }
    // No credentials anywhere: the port picks the probe, greeting only.
    assert_eq!(probes[5], &ProbeSpec::Mysql(SqlSpec::default()));
    assert_eq!(probes[6], &ProbeSpec::Pgsql(SqlSpec::default()));
    assert_eq!(probes[7], &ProbeSpec::Icmp);
}

#[test]
fn database_and_regex_errors() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
listen = "127.0.0.1:3306"

  [virtual_service.check]
  type = "mysql"
  password = "x"
  query = ""
  helo_name = "lb1"

  [[virtual_service.real_server]]
  address = "127.0.0.1:13306"
  check = { type = "http", body_regex = "status: (ok", database = "app" }

  [[virtual_service.real_server]]
  address = "127.0.0.1:13307"
  check = { type = "tcp", query = "SELECT 1" }

  [[virtual_service.real_server]]
  address = "127.0.0.1:13308"
  check = { type = "pgsql", db = "app" }

  [[virtual_service.real_server]]
  address = "127.0.0.1:13309"
  check = { type = "tcpp", username = "u", database = "app" }

[[virtual_service]]
listen = "127.0.0.1:8080"
check = { username = "u", database = "app" }
real_server = [{ address = "127.0.0.1:18080" }]
"#
    ));
}

#[test]
fn head_with_a_body_check_is_an_error() {
    assert_snapshot!(render(
        r#"[[virtual_service]]
listen = "127.0.0.1:8080"
check = { type = "http", body_contains = "OK" }
real_server = [
  { address = "127.0.0.1:18081", check = { method = "HEAD" } },
]
"#
    ));
}

/// As ldirectord: with no check type, the virtual service's port picks the
/// probe; a service port that picks none leaves it to the real server's.
#[test]
fn default_probe_by_the_virtual_service_port() {
    let cfg = ok(r#"
[[virtual_service]]
listen = "192.0.2.10:3306"
check = { username = "hc" }
real_server = [{ address = "198.51.100.1:13306" }]

[[virtual_service]]
listen = "192.0.2.10:80"
check = {}
real_server = [{ address = "198.51.100.1:8080" }]

[[virtual_service]]
listen = "192.0.2.10:6379"
check = {}
real_server = [{ address = "198.51.100.1:16379" }]

[[virtual_service]]
listen = "192.0.2.10:8443"
check = {}
real_server = [{ address = "198.51.100.1:5432" }]
"#);
    let probes: Vec<&ProbeSpec> = cfg.checks.iter().map(|c| &c.spec.probe).collect();
    assert!(matches!(probes[0], ProbeSpec::Mysql(_)), "{:?}", probes[0]);
    assert!(
        matches!(probes[1], ProbeSpec::Http(h) if h.tls.is_none()),
        "{:?}",
        probes[1]
    );
    assert!(matches!(probes[2], ProbeSpec::Redis(_)), "{:?}", probes[2]);
    assert!(matches!(probes[3], ProbeSpec::Pgsql(_)), "{:?}", probes[3]);
}

#[test]
fn ldirectord_service_probes() {
    let cfg = ok(r#"
[global]
check = {}

[[virtual_service]]
listen = "127.0.0.1:8080"
real_server = [
  { address = "127.0.0.1:21" },
  { address = "127.0.0.1:143" },
  { address = "127.0.0.1:993" },
  { address = "127.0.0.1:110" },
  { address = "127.0.0.1:995" },
  { address = "127.0.0.1:119" },
  { address = "127.0.0.1:7000", check = { type = "simpletcp", send = 'PING\r\n', expect_regex = "^\\+PONG" } },
  { address = "127.0.0.1:7001", check = { send = "x", tls = true, sni = "a.example" } },
  { address = "127.0.0.1:2121", check = { type = "ftp", username = "hc", password = "pw", retrieve = "f.txt", expect_regex = "ok" } },
  { address = "127.0.0.1:1143", check = { type = "imaps", username = "u", password = "p" } },
  { address = "127.0.0.1:1110", check = { type = "pop" } },
  { address = "127.0.0.1:2587", check = { type = "submission", helo_name = "lb1" } },
  { address = "127.0.0.2:993", check = { sni = "mail.example" } },
]
"#);
    let probes: Vec<&ProbeSpec> = cfg.checks.iter().map(|c| &c.spec.probe).collect();
    assert_eq!(probes[0], &ProbeSpec::Ftp(FtpSpec::default()));
    assert_eq!(probes[1], &ProbeSpec::Imap(MailSpec::default()));
    assert_eq!(probes[2], &ProbeSpec::Imap(MailSpec::tls()));
    assert_eq!(probes[3], &ProbeSpec::Pop(MailSpec::default()));
    assert_eq!(probes[4], &ProbeSpec::Pop(MailSpec::tls()));
    assert_eq!(probes[5], &ProbeSpec::Nntp);
    let ProbeSpec::SimpleTcp(t) = probes[6] else {
        panic!("{:?}", probes[6]);
    };
    assert_eq!(t.send, b"PING\r\n");
    assert_eq!(t.expect.as_ref().unwrap().as_str(), "^\\+PONG");
    assert!(t.tls.is_none());
    assert_eq!(
        probes[7],
        &ProbeSpec::SimpleTcp(SimpleTcpSpec {
            send: b"x".to_vec(),
            expect: None,
            tls: Some(TlsSpec {
                server_name: Some("a.example".into()),
                ..TlsSpec::default()
            }),
        })
    );
    let ProbeSpec::Ftp(f) = probes[8] else {
        panic!("{:?}", probes[8]);
    };
    assert_eq!(
        (
            f.username.as_str(),
            f.password.as_deref(),
            f.retrieve.as_deref()
        ),
        ("hc", Some("pw"), Some("f.txt"))
    );
    assert_eq!(
        probes[9],
        &ProbeSpec::Imap(MailSpec {
            username: Some("u".into()),
            password: Some("p".into()),
            tls: Some(TlsSpec::default()),
        })
    );
    assert_eq!(probes[10], &ProbeSpec::Pop(MailSpec::default()));
    assert_eq!(
        probes[11],
        &ProbeSpec::Smtp(SmtpSpec {
            helo_name: "lb1".into(),
            starttls: Some(TlsSpec::default()),
        })
    );
    // TLS keys on an imaps port keep imaps (not https).
    assert!(
        matches!(probes[12], ProbeSpec::Imap(MailSpec { tls: Some(t), .. }) if t.server_name.as_deref() == Some("mail.example")),
        "{:?}",
        probes[12]
    );
}

#[test]
fn ldirectord_service_probe_errors() {
    let out = render(
        r#"[[virtual_service]]
listen = "127.0.0.1:1521"

  [virtual_service.check]
  type = "oracle"

  [[virtual_service.real_server]]
  address = "127.0.0.1:1530"
  check = { type = "imap", username = "u" }

  [[virtual_service.real_server]]
  address = "127.0.0.1:1522"
  check = { type = "simpletcp", send = 'a\q', expect_regex = "(", retrieve = "f" }

  [[virtual_service.real_server]]
  address = "127.0.0.1:1523"
  check = { type = "pop", tls = true }
"#,
    );
    assert_snapshot!(out);
}

#[test]
fn sip_and_http_proxy_probes() {
    use halb_health::{SipSpec, SipTransport};
    let cfg = ok(r#"
[global]
check = {}

[[virtual_service]]
listen = "127.0.0.1:8080"
real_server = [
  { address = "127.0.0.1:5060" },
  { address = "127.0.0.1:5061", check = { type = "sip", transport = "tcp", username = "ldirectord@lb1", expect_status = 200 } },
  { address = "127.0.0.1:5062", check = { transport = "udp" } },
  { address = "127.0.0.1:3128", check = { url = "http://www.example.com/health", body_regex = "ok" } },
  { address = "127.0.0.1:3129", check = { type = "http_proxy", url = "http://192.0.2.80:81/", expect_status = "200-399", method = "HEAD" } },
  { address = "127.0.0.2:3128" },
]
"#);
    let probes: Vec<&ProbeSpec> = cfg.checks.iter().map(|c| &c.spec.probe).collect();
    assert_eq!(probes[0], &ProbeSpec::Sip(SipSpec::default()));
    assert_eq!(
        probes[1],
        &ProbeSpec::Sip(SipSpec {
            transport: SipTransport::Tcp,
            username: Some("ldirectord@lb1".into()),
            expect_status: vec![200..=200],
        })
    );
    assert_eq!(probes[2], &ProbeSpec::Sip(SipSpec::default()));
    let ProbeSpec::HttpProxy(h) = probes[3] else {
        panic!("{:?}", probes[3]);
    };
    assert_eq!(h.path, "http://www.example.com/health");
    assert_eq!(h.body_regex.as_ref().unwrap().as_str(), "ok");
    let ProbeSpec::HttpProxy(h) = probes[4] else {
        panic!("{:?}", probes[4]);
    };
    assert_eq!(
        (h.method, h.expect_status.clone()),
        (HttpMethod::Head, vec![200..=399])
    );
    // Port 3128 without a URL stays a connect: there is nothing to fetch.
    assert_eq!(probes[5], &ProbeSpec::Tcp);
}

#[test]
fn sip_and_http_proxy_errors() {
    let out = render(
        r#"[[virtual_service]]
listen = "127.0.0.1:3128"

  [[virtual_service.real_server]]
  address = "127.0.0.1:3130"
  check = { type = "http_proxy" }

  [[virtual_service.real_server]]
  address = "127.0.0.1:3131"
  check = { type = "http_proxy", url = "https://www.example.com/", path = "/x" }

  [[virtual_service.real_server]]
  address = "127.0.0.1:5060"
  check = { type = "sip", transport = "sctp", password = "pw" }

  [[virtual_service.real_server]]
  address = "127.0.0.1:80"
  check = { type = "http", url = "http://a/" }
"#,
    );
    assert_snapshot!(out);
}

#[test]
fn ldap_and_radius_checks() {
    let cfg = ok(r#"
[global]
check = {}

[[virtual_service]]
listen = "127.0.0.1:8080"
real_server = [
  { address = "127.0.0.1:389" },
  { address = "127.0.0.1:636" },
  { address = "127.0.0.1:1812", check = { secret = "testing123" } },
  { address = "127.0.0.1:3389", check = { type = "ldap", bind_dn = "cn=Directory Manager,dc=example,dc=org", password = "pw", search_base = "ou=health,dc=example,dc=org", expect_regex = "^ou=health" } },
  { address = "127.0.0.1:3636", check = { type = "ldaps", sni = "ldap.example", verify = true } },
  { address = "127.0.0.1:3390", check = { search_base = "dc=example,dc=org" } },
  { address = "127.0.0.1:11812", check = { type = "radius", secret = "s", username = "hc", password = "p", require_accept = true } },
]
"#);
    let probes: Vec<&ProbeSpec> = cfg.checks.iter().map(|c| &c.spec.probe).collect();
    // ldirectord's defaults by port: an anonymous bind and a root DSE
    // search; radius with the secret given.
    assert_eq!(probes[0], &ProbeSpec::Ldap(LdapSpec::root_dse()));
    assert_eq!(probes[1], &ProbeSpec::Ldap(LdapSpec::tls()));
    assert_eq!(probes[2], &ProbeSpec::Radius(RadiusSpec::new("testing123")));
    let ProbeSpec::Ldap(l) = probes[3] else {
        panic!("{:?}", probes[3]);
    };
    assert_eq!(
        (
            l.bind_dn.as_deref(),
            l.password.as_deref(),
            l.search_base.as_deref(),
            l.expect.as_ref().map(|e| e.as_str()),
            l.tls.is_none()
        ),
        (
            Some("cn=Directory Manager,dc=example,dc=org"),
            Some("pw"),
            Some("ou=health,dc=example,dc=org"),
            Some("^ou=health"),
            true
        )
    );
    assert_eq!(
        probes[4],
        &ProbeSpec::Ldap(LdapSpec {
            tls: Some(TlsSpec {
                server_name: Some("ldap.example".into()),
                verify: true,
                ..TlsSpec::default()
            }),
            ..LdapSpec::root_dse()
        })
    );
    // search_base alone implies ldap.
    assert_eq!(
        probes[5],
        &ProbeSpec::Ldap(LdapSpec {
            search_base: Some("dc=example,dc=org".into()),
            ..LdapSpec::default()
        })
    );
    assert_eq!(
        probes[6],
        &ProbeSpec::Radius(RadiusSpec {
            username: "hc".into(),
            password: Some("p".into()),
            secret: "s".into(),
            require_accept: true,
        })
    );
    // Never the secret or password in the JSON of the config.
    let json = serde_json::to_string(&cfg.checks[6].spec).unwrap();
    assert!(
        json.contains("<redacted>") && !json.contains("\"s\""),
        "{json}"
    );
}

#[test]
fn ldap_and_radius_check_errors() {
    let out = render(
        r#"[[virtual_service]]
listen = "127.0.0.1:8080"

  [[virtual_service.real_server]]
  address = "127.0.0.1:1812"
  check = { interval = "2s" }

  [[virtual_service.real_server]]
  address = "127.0.0.1:1813"
  check = { type = "radius", password = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", secret = "", require_accept = "yes" }

  [[virtual_service.real_server]]
  address = "127.0.0.1:1814"
  check = { type = "ldap", password = "p", secret = "s", sni = "a.example" }

  [[virtual_service.real_server]]
  address = "127.0.0.1:1815"
  check = { type = "ldaps", bind_dn = "", search_base = "dc=a\ndc=b" }

  [[virtual_service.real_server]]
  address = "127.0.0.1:1816"
  check = { type = "imap", bind_dn = "cn=x", shared_secret = "s" }
"#,
    );
    assert_snapshot!(out);
}
