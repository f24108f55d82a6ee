//! `[global.sync]`: the config sync channel's table, and its errors.
#![allow(clippy::unwrap_used)]

use halb_config::{parse, ConfigErrors, SyncPeer};
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
    for err in &e {
        assert!(err.line >= 1, "{err:?}");
        assert!(err.expected.is_some() && err.fix.is_some(), "{err:?}");
    }
    e.render()
}

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

#[test]
fn sync_parses() {
    let c = parse(
        &format!(
            r#"[global.sync]
name = "d1"
listen = "192.0.2.1:7947"
key = "{KEY}"
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
        [SyncPeer {
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
