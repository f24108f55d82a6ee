//! Whatever the input, parsing never panics, and every error points inside
//! the file.
#![allow(clippy::unwrap_used)]

use halb_config::{parse, ConfigErrors};
use proptest::prelude::*;
use proptest::sample::Index;
use std::path::Path;

const VALID: &str = r#"# halb.toml
[global]
control_socket = "/run/halb/halb.sock"
workers = 2
connect_timeout = "3s"
idle_timeout = "15m"
on_down = "quiescent"

[[virtual_service]]
name = "web"
listen = "127.0.0.1:8080"
scheduler = "sh"
scheduler_flags = ["fallback", "port"]
fallback = "127.0.0.1:9999"
proxy_protocol = "v2"

  [virtual_service.persistence]
  timeout = "600s"
  netmask = "255.255.255.0"
  prefix_v6 = 64

  [[virtual_service.real_server]]
  address = "127.0.0.1:18081"
  weight = 1
  upper_threshold = 100
  lower_threshold = 50

  [[virtual_service.real_server]]
  address = "127.0.0.1:18082"
  weight = 3

[[virtual_service]]
listen = "[::1]:53"
protocol = "udp"
udp_timeout = "1m"
real_server = [{ address = "[::1]:5353" }, { address = "[::1]:5354", weight = 0 }]
"#;

/// Every error has a line and column inside `src`, and renders.
fn check_positions(src: &str, e: &ConfigErrors) {
    assert!(!e.is_empty());
    let lines: Vec<&str> = src.split('\n').collect();
    let mut last = (0, 0);
    for err in e {
        assert!(
            err.line >= 1 && err.line <= lines.len(),
            "{err:?} in {src:?}"
        );
        let raw = lines[err.line - 1];
        let text = raw.strip_suffix('\r').unwrap_or(raw);
        assert!(
            err.column >= 1 && err.column <= text.chars().count() + 1,
            "{err:?} in {src:?}"
        );
        assert!(err.end_column > err.column, "{err:?}");
        // Long lines are cut and secrets masked; the rest is quoted whole.
        let secret = ["pass", "key", "secret", "token", "auth"]
            .iter()
            .any(|k| text.to_ascii_lowercase().contains(k));
        if text.chars().count() <= halb_config::SNIPPET_WIDTH && !secret {
            assert_eq!(err.source_line.as_deref(), Some(text));
        }
        let shown = err.source_line.as_deref().unwrap_or("");
        assert!(
            shown.chars().count() <= halb_config::SNIPPET_WIDTH,
            "{err:?}"
        );
        assert!(!err.message.is_empty());
        assert!((err.line, err.column) >= last, "not in source order: {e}");
        last = (err.line, err.column);
        assert!(err.to_string().starts_with("error: halb.toml:"));
    }
    assert!(e.render().ends_with(&format!("{}\n", e.summary())));
}

fn run(src: &str) {
    if let Err(e) = parse(src, Path::new("halb.toml")) {
        check_positions(src, &e);
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(Index, usize),
    Insert(Index, &'static str),
    Replace(Index, char),
    Duplicate(Index, usize),
}

const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "\"",
    "'",
    "=",
    "\n",
    "#",
    ",",
    "{",
    "}",
    "0",
    "-1",
    "70000",
    "x",
    "::",
    ".",
    " ",
    "\t",
    "é",
    "\r\n",
    "true",
    "\"wrr\"",
    "1.5",
    "\"\"",
    "\\",
    "[[virtual_service]]\n",
    "[global]\n",
    "weight = 2\n",
    "listen = \"127.0.0.1:8080\"\n",
    "\u{0}",
    "💥",
    "\"\"\"",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1usize..20).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), proptest::sample::select(TOKENS))
            .prop_map(|(i, t)| Mutation::Insert(i, t)),
        (any::<Index>(), any::<char>()).prop_map(|(i, c)| Mutation::Replace(i, c)),
        (any::<Index>(), 1usize..80).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn apply(src: &str, m: &Mutation) -> String {
    let mut chars: Vec<char> = src.chars().collect();
    match m {
        Mutation::Delete(i, n) => {
            if !chars.is_empty() {
                let at = i.index(chars.len());
                let end = (at + n).min(chars.len());
                chars.drain(at..end);
            }
        }
        Mutation::Insert(i, t) => {
            let at = i.index(chars.len() + 1);
            chars.splice(at..at, t.chars());
        }
        Mutation::Replace(i, c) => {
            if !chars.is_empty() {
                let at = i.index(chars.len());
                chars[at] = *c;
            }
        }
        Mutation::Duplicate(i, n) => {
            if !chars.is_empty() {
                let at = i.index(chars.len());
                let end = (at + n).min(chars.len());
                let copy: Vec<char> = chars[at..end].to_vec();
                chars.splice(end..end, copy);
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn the_base_config_is_valid() {
    let cfg = parse(VALID, Path::new("halb.toml")).unwrap();
    assert_eq!(cfg.services.len(), 2);
}

proptest! {
    // PROPTEST_CASES overrides, for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,300}") {
        run(&s);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        run(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn toml_like_text_never_panics(s in "([\\[\\]a-z_=\" .0-9:{},#\t-]|\n|\r\n|virtual_service|real_server|listen|address|weight){0,120}") {
        run(&s);
    }

    #[test]
    fn mutations_parse_or_point_inside_the_file(ms in proptest::collection::vec(mutation(), 1..6)) {
        let mut src = VALID.to_owned();
        for m in &ms {
            src = apply(&src, m);
        }
        run(&src);
    }
}
