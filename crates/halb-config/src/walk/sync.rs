//! `[global.sync]`: the config sync channel between the directors of a
//! pair (halb-sync): where it listens, the peers, the shared key.

use super::{Cx, Field, Node, Section, Want};
use crate::diag::Problem;
use crate::values::quote;
use crate::{SyncConfig, SyncPeer, DEFAULT_SYNC_INTERVAL};
use std::time::Duration;

pub(super) const SYNC_KEYS: &[&str] = &["name", "listen", "key", "peers", "interval"];
pub(super) const PEER_KEYS: &[&str] = &["name", "address"];

/// A peer's or this director's name: what `halb list` and the alerts say.
fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Cx<'_> {
    /// `sync` in `[global]`.
    pub(super) fn sync(&mut self, f: &Field) -> Option<SyncConfig> {
        let w = Want {
            short: "a table",
            expected: "a [global.sync] table",
            example: "",
        };
        let n = self.table(f, &w, Some("write it as a table: [global.sync]".into()))?;
        self.check_keys(&n, Section::Sync);
        let before = self.errors.len();
        let name = self.field(&n, "name").and_then(|f| self.sync_name(&f));
        let listen = match self.field(&n, "listen") {
            Some(f) => self.addr(&f, "\"192.0.2.1:7947\""),
            None => {
                self.missing(&n, "listen", "listen = \"192.0.2.1:7947\": this director's address on the link to its peer, and a port", "add listen = \"ADDRESS:7947\" with this director's address (not 0.0.0.0: the channel carries the config)");
                None
            }
        };
        let key = match self.field(&n, "key") {
            Some(f) => self.sync_key(&f),
            None => {
                self.missing(&n, "key", "key = 64 hex digits, or a passphrase of at least 16 bytes", "add key = \"…\" (e.g. the output of `openssl rand -hex 32`), the same on every director");
                None
            }
        };
        let peers = match self.field(&n, "peers") {
            Some(f) => self.sync_peers(&f),
            None => {
                self.missing(&n, "peers", "peers = [{ name = \"d2\", address = \"192.0.2.2:7947\" }]", "add peers = [{ name = \"d2\", address = \"PEER:7947\" }] with the other director's sync address");
                None
            }
        };
        let interval = match self.field(&n, "interval") {
            Some(f) => self.duration(
                &f,
                Duration::from_secs(1),
                "ask the peer at most once a second: use at least \"1s\"",
            ),
            None => Some(DEFAULT_SYNC_INTERVAL),
        };
        if self.errors.len() != before {
            return None;
        }
        Some(SyncConfig {
            name,
            listen: listen?,
            key: key?,
            peers: peers?,
            interval: interval?,
        })
    }

    fn missing(&mut self, n: &Node, key: &str, expected: &str, fix: &str) {
        self.push(
            Problem::new(
                n.span.clone(),
                super::join(&n.path, key),
                format!("[global.sync] without `{key}`"),
            )
            .expected(expected)
            .fix(fix),
        );
    }

    fn sync_name(&mut self, f: &Field) -> Option<String> {
        let w = Want {
            short: "a string",
            expected: "a name of letters, digits, '-', '_' and '.' (at most 64)",
            example: "\"d2\"",
        };
        let s = self.string(f, &w)?;
        let problem = (!name_ok(s)).then(|| {
            (
                format!("{} is not a director name", quote(s)),
                "use the host name, e.g. \"lvs2\" (letters, digits, '-', '_', '.')".to_owned(),
            )
        });
        let s = s.to_owned();
        self.accept(f, w.expected, problem, || s)
    }

    fn sync_key(&mut self, f: &Field) -> Option<Vec<u8>> {
        let w = Want {
            short: "a string",
            expected: "64 hex digits or a passphrase of 16+ bytes",
            example: "\"…\"",
        };
        let k = self.string(f, &w)?;
        let key = crate::values::key_bytes(k);
        let problem = (key.len() < 16).then(|| {
            (
                format!("key is only {} bytes", key.len()),
                "use 64 hex digits (`openssl rand -hex 32`) or a passphrase of at least 16 bytes"
                    .to_owned(),
            )
        });
        self.accept(f, w.expected, problem, || key)
    }

    fn sync_peers(&mut self, f: &Field) -> Option<Vec<SyncPeer>> {
        let example = "{ name = \"d2\", address = \"192.0.2.2:7947\" }";
        let tables = self.tables(f, "global.sync.peers", example);
        if tables.is_empty() {
            self.push(
                Problem::new(f.span.clone(), f.path.clone(), "no peer in `peers`")
                    .expected(format!("at least one peer: peers = [{example}]"))
                    .fix("add the other director: peers = [{ name = \"d2\", address = \"PEER:7947\" }]"),
            );
            return None;
        }
        let mut out: Vec<SyncPeer> = Vec::new();
        let mut ok = true;
        for (j, t, span) in tables {
            let n = Node {
                tbl: t,
                path: format!("{}[{j}]", f.path),
                span: span.clone(),
            };
            self.check_keys(&n, Section::SyncPeer);
            let name = match self.field(&n, "name") {
                Some(x) => {
                    let name = self.sync_name(&x);
                    if let Some(nm) = &name {
                        if out.iter().any(|p| &p.name == nm) {
                            self.push(
                                Problem::new(
                                    x.span.clone(),
                                    x.path.clone(),
                                    format!("peer {} named twice", quote(nm)),
                                )
                                .expected("one entry per peer director")
                                .fix("remove the second entry, or give it its own name"),
                            );
                            ok = false;
                        }
                    }
                    name
                }
                None => {
                    self.push(
                        Problem::new(span.clone(), n.path.clone(), "peer without `name`")
                            .expected("name = \"d2\": how halb list and the alerts call the peer")
                            .fix("add name = \"d2\" (the peer's host name)"),
                    );
                    None
                }
            };
            let address = match self.field(&n, "address") {
                Some(x) => self.addr(&x, "\"192.0.2.2:7947\""),
                None => {
                    self.push(
                        Problem::new(span.clone(), n.path.clone(), "peer without `address`")
                            .expected(
                                "address = \"192.0.2.2:7947\": the peer's [global.sync] listen",
                            )
                            .fix("add address = \"PEER:7947\""),
                    );
                    None
                }
            };
            match (name, address) {
                (Some(name), Some(address)) => out.push(SyncPeer { name, address }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }
}
