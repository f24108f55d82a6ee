//! ldap, ldaps and radius checks end to end: the real `halb` binary
//! checking a real slapd and a real freeradius (started by the test, see
//! halb-health's `tests/support/dbs.rs`), and `halb list` / `--json`
//! showing each real server's state with the probe's reason, never a
//! password or the shared secret. Every wait is a bounded poll; no
//! timing is asserted.
#![allow(clippy::unwrap_used)]

#[path = "../../halb-health/tests/support/dbs.rs"]
mod dbs;

mod common;

use common::{free_port, Daemon};

fn service(name: &str, protocol: &str, real: u16, check: &str) -> String {
    format!(
        "[[virtual_service]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{}\"\nprotocol = \"{protocol}\"\n\
         check = {{ {check}, interval = \"300ms\", timeout = \"2s\" }}\n\
         real_server = [{{ address = \"127.0.0.1:{real}\" }}]\n\n",
        free_port()
    )
}

fn text(h: &serde_json::Value, key: &str) -> String {
    h[key].as_str().unwrap_or_default().to_owned()
}

#[test]
fn ldap_and_radius_checks_and_reasons_in_halb_list() {
    let Some((mut slapd, ldaps)) = dbs::start_slapd() else {
        return;
    };
    let Some(radius) = dbs::start_freeradius() else {
        return;
    };
    let (ldap, rad) = (slapd.addr.port(), radius.addr.port());
    let admin = "bind_dn = \"cn=admin,dc=example,dc=org\"";
    let mut cfg = String::new();
    cfg += &service("ldap-anon", "tcp", ldap, "type = \"ldap\"");
    cfg += &service(
        "ldaps-admin",
        "tcp",
        ldaps,
        &format!("type = \"ldaps\", {admin}, password = \"hc-pass-1\", search_base = \"ou=health,dc=example,dc=org\", expect_regex = \"^ou=health,\""),
    );
    cfg += &service(
        "ldap-badpw",
        "tcp",
        ldap,
        &format!("type = \"ldap\", {admin}, password = \"wrong\""),
    );
    cfg += &service(
        "radius-accept",
        "udp",
        rad,
        "type = \"radius\", secret = \"testing123\", username = \"hc\", password = \"hc-pass-1\", require_accept = true",
    );
    cfg += &service(
        "radius-reject",
        "udp",
        rad,
        "type = \"radius\", secret = \"testing123\", username = \"hc\", password = \"wrong\", require_accept = true",
    );
    let d = Daemon::start_checked("dircheck", &cfg);
    let wait = |name: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
        d.wait_health_entry(name, |h| h["service"] == name && pred(h))
    };

    let h = wait("ldap-anon", &|h| h["health"] == "up");
    assert_eq!(
        text(&h, "reason"),
        "LDAP bind and search (root DSE) OK",
        "{h:#}"
    );
    assert!(
        text(&h, "check").starts_with(&format!(
            "ldap bind (anonymous) 127.0.0.1:{ldap} search (root DSE) every"
        )),
        "{h:#}"
    );
    let h = wait("ldaps-admin", &|h| h["health"] == "up");
    assert_eq!(
        text(&h, "reason"),
        "LDAP bind and search ou=health,dc=example,dc=org OK",
        "{h:#}"
    );
    let h = wait("radius-accept", &|h| h["health"] == "up");
    assert_eq!(
        text(&h, "reason"),
        "Access-Accept for hc: Hello hc",
        "{h:#}"
    );
    let h = wait("ldap-badpw", &|h| h["reason"].is_string());
    assert_eq!(h["health"], "down", "{h:#}");
    assert_eq!(
        text(&h, "reason"),
        "bind cn=admin,dc=example,dc=org: invalidCredentials (49)",
        "{h:#}"
    );
    let h = wait("radius-reject", &|h| h["reason"].is_string());
    assert_eq!(h["health"], "down", "{h:#}");
    // FreeRADIUS sends the users file's Reply-Message with the reject too.
    let reason = text(&h, "reason");
    assert!(
        reason.starts_with("Access-Reject for hc") && reason.ends_with("(require_accept)"),
        "{h:#}"
    );

    let out = d.list(&[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("Down   (bind cn=admin,dc=example,dc=org: invalidCredentials (49))"),
        "{table}"
    );
    let json = String::from_utf8_lossy(&d.list(&["--json"]).stdout).into_owned();
    for secret in ["hc-pass-1", "testing123"] {
        assert!(
            !table.contains(secret) && !json.contains(secret),
            "{secret} leaked: {table}\n{json}"
        );
    }

    // slapd stopped: down, with the reason.
    slapd.stop();
    let h = wait("ldap-anon", &|h| h["health"] == "down");
    assert!(text(&h, "reason").contains("connect to 127.0.0.1"), "{h:#}");
}
