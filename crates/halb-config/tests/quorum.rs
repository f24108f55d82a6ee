//! `[global.quorum]`: the model and the errors.
#![allow(clippy::unwrap_used)]

use halb_config::{parse, ConfigErrors};
use halb_quorum::{NoQuorumPolicy, Provider, DEFAULT_SETTLE};
use insta::assert_snapshot;
use std::path::Path;
use std::time::Duration;

const VRRP: &str = r#"
[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = 150
virtual_ipaddress = ["192.0.2.100/24"]
"#;

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
        assert!(err.expected.is_some() && err.fix.is_some(), "{err:?}");
    }
    e.render()
}

#[test]
fn defaults_and_every_key() {
    let c = parse(
        &format!("[global.quorum]\nprovider = \"corosync\"\n{VRRP}"),
        Path::new("halb.toml"),
    )
    .unwrap();
    let q = c.global.quorum.unwrap();
    assert_eq!(q.provider, Provider::Corosync);
    assert_eq!(q.settle, DEFAULT_SETTLE);
    assert_eq!(q.no_quorum_policy, NoQuorumPolicy::Stop);

    let c = parse(
        &format!(
            "[global.quorum]\nprovider = \"corosync\"\nsettle = \"0s\"\nno_quorum_policy = \"ignore\"\n{VRRP}"
        ),
        Path::new("halb.toml"),
    )
    .unwrap();
    let q = c.global.quorum.unwrap();
    assert_eq!(q.settle, Duration::ZERO);
    assert_eq!(q.no_quorum_policy, NoQuorumPolicy::Ignore);

    // Without the table: no quorum, VRRP alone decides.
    let c = parse(VRRP, Path::new("halb.toml")).unwrap();
    assert_eq!(c.global.quorum, None);
}

#[test]
fn quorum_errors() {
    assert_snapshot!(render(&format!(
        r#"[global.quorum]
provider = "corosinc"
settle = "10m"
no_quorum_policy = "suicide"
expected_votes = 3
{VRRP}"#
    )));
}

#[test]
fn quorum_needs_a_provider_and_an_instance() {
    assert_snapshot!(render("[global.quorum]\nsettle = \"1s\"\n"));
}

#[test]
fn quorum_must_be_a_table() {
    assert_snapshot!(render(&format!("[global]\nquorum = \"corosync\"\n{VRRP}")));
}

#[test]
fn docs_quorum_example_parses() {
    let doc = include_str!("../../../docs/configuration.md");
    let from = doc.find("### Membership: quorum from Corosync").unwrap();
    let start = from + doc[from..].find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let c = parse(
        &format!("{}{VRRP}", &doc[start..end]),
        Path::new("doc.toml"),
    )
    .unwrap();
    let q = c.global.quorum.unwrap();
    assert_eq!(q.settle, Duration::from_secs(2));
    assert_eq!(q.no_quorum_policy, NoQuorumPolicy::Stop);
}
