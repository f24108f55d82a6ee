//! `alert` tables: the global table merged key by key into each service's,
//! and the errors an operator sees.
#![allow(clippy::unwrap_used)]

use halb_alert::{AlertSpec, DaemonStatus, Starttls, StatusSet};
use halb_config::{parse, Config, ConfigErrors};
use insta::assert_snapshot;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn ok(src: &str) -> Config {
    match parse(src, Path::new("/etc/halb/halb.toml")) {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

fn render(src: &str) -> String {
    let e: ConfigErrors = match parse(src, Path::new("halb.toml")) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e,
    };
    let lines = src.split('\n').count();
    for err in &e {
        assert!(err.line >= 1 && err.line <= lines, "{err:?}");
        assert!(err.column >= 1 && err.end_column > err.column, "{err:?}");
        assert!(err.expected.is_some() && err.fix.is_some(), "{err:?}");
    }
    e.render()
}

fn alert<'a>(c: &'a Config, name: &str) -> Option<&'a AlertSpec> {
    c.alerts.iter().find(|(n, _)| n == name).map(|(_, a)| a)
}

#[test]
fn global_table_merges_into_services() {
    let c = ok(r#"
[global.alert]
email = "ops@example.com, oncall@example.com"
email_from = "halb@lb1.example.com"
smtp = "mail.example.com:587"
smtp_starttls = "required"
smtp_ca_file = "ca.pem"
smtp_user = "halb"
smtp_password = "s3cret"
email_alert_freq = "10m"
email_alert_status = "starting,running"

[[virtual_service]]
name = "web"
listen = "127.0.0.1:8080"
alert = { webhook = "http://127.0.0.1:9000/hook", email_alert_freq = 0, webhook_retries = 1 }
real_server = [{ address = "127.0.0.1:18081" }]

[[virtual_service]]
name = "db"
listen = "127.0.0.1:8081"
alert = { email = ["dba@example.com"], email_alert_status = ["running"] }
real_server = [{ address = "127.0.0.1:18082" }]
"#);
    let web = alert(&c, "web").unwrap();
    let hook = web.webhook.as_ref().unwrap();
    assert_eq!(hook.url.to_string(), "http://127.0.0.1:9000/hook");
    assert_eq!((hook.retries, hook.timeout), (1, Duration::from_secs(5)));
    let mail = web.email.as_ref().unwrap();
    assert_eq!(mail.to, ["ops@example.com", "oncall@example.com"]);
    assert_eq!(mail.from.as_deref(), Some("halb@lb1.example.com"));
    assert_eq!(
        (mail.smtp_host.as_str(), mail.smtp_port),
        ("mail.example.com", 587)
    );
    assert_eq!(mail.starttls, Starttls::Required);
    assert_eq!(mail.ca_file, Some(PathBuf::from("/etc/halb/ca.pem")));
    assert_eq!(mail.auth, Some(("halb".into(), "s3cret".into())));
    assert_eq!(mail.repeat, Duration::ZERO, "the service's 0 wins");
    assert!(mail.status.contains(DaemonStatus::Starting));
    assert!(!mail.status.contains(DaemonStatus::Stopping));

    let db = alert(&c, "db").unwrap();
    assert!(db.webhook.is_none());
    let mail = db.email.as_ref().unwrap();
    assert_eq!(mail.to, ["dba@example.com"]);
    assert_eq!(mail.repeat, Duration::from_secs(600));
    assert_eq!(mail.status, StatusSet::NONE.with(DaemonStatus::Running));
}

#[test]
fn defaults_and_no_alerts() {
    let c = ok(r#"
[[virtual_service]]
listen = "127.0.0.1:8080"
alert = { email = "ops@example.com" }
real_server = [{ address = "127.0.0.1:18081" }]

[[virtual_service]]
listen = "127.0.0.1:8081"
real_server = [{ address = "127.0.0.1:18081" }]
"#);
    assert_eq!(c.alerts.len(), 1, "the second service has none");
    let mail = c.alerts[0].1.email.as_ref().unwrap();
    assert_eq!((mail.smtp_host.as_str(), mail.smtp_port), ("127.0.0.1", 25));
    assert_eq!(mail.starttls, Starttls::Off);
    assert_eq!(mail.status, StatusSet::ALL);
    assert_eq!(mail.repeat, Duration::ZERO);
    assert_eq!((mail.timeout, mail.retries), (Duration::from_secs(30), 2));
    assert!(mail.auth.is_none() && mail.from.is_none());
}

#[test]
fn alert_errors() {
    assert_snapshot!(render(
        r#"[global.alert]
emailalert = "ops@example.com"
smtp_user = "halb"
webhook = "ftp://example.com/x"

[[virtual_service]]
name = "web"
listen = "127.0.0.1:8080"
real_server = [{ address = "127.0.0.1:18081" }]
  [virtual_service.alert]
  email = ["ops@example.com", "not an address"]
  smtp = "mail.example.com:0"
  smtp_starttls = "yes please"
  email_alert_status = ["running", "all"]
  email_alert_freq = "1.5s"
  webhook_retries = 11
"#
    ));
}

#[test]
fn alert_keys_outside_an_alert_table() {
    assert_snapshot!(render(
        r#"[global]
emailalert = "ops@example.com"

[[virtual_service]]
listen = "127.0.0.1:8080"
webhook = "http://127.0.0.1:9000/"
real_server = [{ address = "127.0.0.1:18081" }]
"#
    ));
}

#[test]
fn alert_type_errors() {
    assert_snapshot!(render(
        r#"[global]
alert = "ops@example.com"

[[virtual_service]]
listen = "127.0.0.1:8080"
alert = { email = 5, email_alert_status = "sometimes", smtp_retries = "2" }
  [[virtual_service.real_server]]
  address = "127.0.0.1:18082"

[[virtual_service]]
listen = "127.0.0.1:8081"
alert = { email = [], smtp_password = "x" }
real_server = [{ address = "127.0.0.1:18081" }]
"#
    ));
}
