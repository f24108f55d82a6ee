//! The config's digest, and the keys each director keeps for itself.
//!
//! Two directors of a pair run one file, except for a few keys that say
//! which director this is: its sync address and peers, its dashboard's
//! address, its VRRP priority and initial state, its unicast addresses. Those are [`NODE_LOCAL`]:
//! they are left out of the digest (a pair is in sync when everything
//! else is equal) and a push keeps the receiver's own ([`keep_local`]).
//!
//! The digest is SHA-256 over a normal form of the TOML document, not
//! over the file's bytes: comments, blank lines, the order of keys and
//! tables, quoting, inline versus standard tables do not change what
//! halb runs, so they are not drift either. It is not over `halb
//! check-config --json` (the effective config) either: that one holds the
//! defaults of this halb version, so two versions of halb with the same
//! file would differ, and a difference could not be shown as lines of the
//! file.

use sha2::{Digest as _, Sha256};
use toml_edit::{DocumentMut, Item, TableLike, Value};

/// The keys of one director, as paths: `*` is each element of an array
/// (of tables). They are not compared, and a push does not change them.
pub const NODE_LOCAL: &[&[&str]] = &[
    &["global", "sync"],
    &["global", "http_listen"],
    &["global", "ipvs", "sync_daemon", "state"],
    &["vrrp_instance", "*", "priority"],
    &["vrrp_instance", "*", "state"],
    &["vrrp_instance", "*", "unicast_source"],
    &["vrrp_instance", "*", "unicast_peers"],
    &["vrrp_instance", "*", "paths"],
];

/// A file that is not TOML (the running config always is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a TOML document: {0}")]
pub struct NotToml(pub String);

fn parse(text: &str) -> Result<DocumentMut, NotToml> {
    text.parse::<DocumentMut>()
        .map_err(|e| NotToml(e.to_string().lines().next().unwrap_or("").to_owned()))
}

/// The digest of a config file: 64 hex digits.
pub fn digest(text: &str) -> Result<String, NotToml> {
    let doc = parse(text)?;
    let mut out = String::new();
    canonical_table(doc.as_table(), &[], &mut out);
    Ok(hex(&Sha256::digest(out.as_bytes())))
}

/// [`digest`], or for a text that is not TOML (a running config always
/// is) the digest of its bytes.
pub fn digest_or_bytes(text: &str) -> String {
    digest(text).unwrap_or_else(|_| hex(&Sha256::digest(text.as_bytes())))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first 12 hex digits, as `halb list` shows a digest.
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// Whether the key at `path` (the parents' names, then the key; array
/// elements as `*`) is node-local.
fn is_local(path: &[&str]) -> bool {
    NODE_LOCAL.contains(&path)
}

fn canonical_table(t: &dyn TableLike, path: &[&str], out: &mut String) {
    let mut keys: Vec<(&str, &Item)> = t.iter().filter(|(_, i)| !i.is_none()).collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (k, item) in keys {
        let mut p = path.to_vec();
        p.push(k);
        if is_local(&p) {
            continue;
        }
        let mut v = String::new();
        canonical_item(item, &p, &mut v);
        // A table left empty (its keys all node-local) is as good as
        // none: `[global]` with only `sync` in it is no difference.
        if v == "{}" && item.is_table_like() {
            continue;
        }
        out.push_str(&json_string(k));
        out.push(':');
        out.push_str(&v);
        out.push(',');
    }
    out.push('}');
}

fn canonical_item(item: &Item, path: &[&str], out: &mut String) {
    match item {
        Item::None => out.push_str("null"),
        Item::Value(v) => canonical_value(v, path, out),
        Item::Table(t) => canonical_table(t, path, out),
        Item::ArrayOfTables(a) => {
            let mut p = path.to_vec();
            p.push("*");
            out.push('[');
            for t in a.iter() {
                canonical_table(t, &p, out);
                out.push(',');
            }
            out.push(']');
        }
    }
}

fn canonical_value(v: &Value, path: &[&str], out: &mut String) {
    match v {
        Value::String(s) => out.push_str(&json_string(s.value())),
        Value::Integer(i) => out.push_str(&i.value().to_string()),
        Value::Float(f) => out.push_str(&format!("{:?}", f.value())),
        Value::Boolean(b) => out.push_str(if *b.value() { "true" } else { "false" }),
        Value::Datetime(d) => {
            out.push('d');
            out.push_str(&json_string(&d.value().to_string()));
        }
        Value::Array(a) => {
            let mut p = path.to_vec();
            p.push("*");
            out.push('[');
            for v in a.iter() {
                canonical_value(v, &p, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::InlineTable(t) => canonical_table(t, path, out),
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// What a push writes on the receiver: the `pushed` file with the
/// receiver's own [`NODE_LOCAL`] keys (taken from its `local` file). A
/// VRRP instance is matched by its `name`; one the receiver does not have
/// comes with the pusher's values. Everything else is the pushed text as
/// written (its comments and layout).
pub fn keep_local(pushed: &str, local: &str) -> Result<String, NotToml> {
    let mut doc = parse(pushed)?;
    let mine = parse(local)?;
    // [global] keys.
    for path in NODE_LOCAL.iter().filter(|p| !p.contains(&"*")) {
        let Some((key, parents)) = path.split_last() else {
            continue;
        };
        let kept = get_path(mine.as_table(), path).cloned();
        let create = kept.is_some();
        if let Some(t) = table_at(doc.as_table_mut(), parents, create) {
            replace(t, key, kept);
        }
    }
    // Per VRRP instance, by name.
    let local_keys: Vec<&str> = NODE_LOCAL
        .iter()
        .filter_map(|p| match p {
            [a, "*", k] if *a == "vrrp_instance" => Some(*k),
            _ => None,
        })
        .collect();
    let mine_instances: Vec<&dyn TableLike> = match mine.get("vrrp_instance") {
        Some(i) => elements(i),
        None => Vec::new(),
    };
    if let Some(item) = doc.get_mut("vrrp_instance") {
        for inst in elements_mut(item) {
            let Some(name) = inst.get("name").and_then(Item::as_str).map(str::to_owned) else {
                continue;
            };
            let Some(m) = mine_instances
                .iter()
                .find(|m| m.get("name").and_then(Item::as_str) == Some(name.as_str()))
            else {
                continue;
            };
            for k in &local_keys {
                replace(inst, k, m.get(k).cloned());
            }
        }
    }
    Ok(doc.to_string())
}

/// Sets `t[key]` to `kept` where the key is (its place in the file kept),
/// inserts it if absent, or removes it when `kept` is `None`.
fn replace(t: &mut dyn TableLike, key: &str, kept: Option<Item>) {
    match (t.get_mut(key), kept) {
        (Some(slot), Some(mut kept)) => {
            if let (Item::Table(new), Item::Table(old)) = (&mut kept, &*slot) {
                if let Some(p) = old.position() {
                    new.set_position(p);
                }
            }
            *slot = kept;
        }
        (None, Some(kept)) => {
            t.insert(key, kept);
        }
        (Some(_), None) => {
            t.remove(key);
        }
        (None, None) => {}
    }
}

/// A document of `text`'s `[global.sync]` alone (`None` when there is
/// none, or `text` is not TOML): what `halb config push` reads its peers
/// from when the rest of the file does not validate.
pub fn sync_table_only(text: &str) -> Option<String> {
    let doc = parse(text).ok()?;
    let sync = get_path(doc.as_table(), &["global", "sync"])?.clone();
    let mut out = DocumentMut::new();
    let t = table_at(out.as_table_mut(), &["global"], true)?;
    t.insert("sync", sync);
    Some(out.to_string())
}

fn get_path<'a>(t: &'a dyn TableLike, path: &[&str]) -> Option<&'a Item> {
    let (first, rest) = path.split_first()?;
    let item = t.get(first)?;
    if rest.is_empty() {
        return Some(item);
    }
    get_path(item.as_table_like()?, rest)
}

/// The table at `path` (created as implicit tables with `create`).
fn table_at<'a>(
    t: &'a mut dyn TableLike,
    path: &[&str],
    create: bool,
) -> Option<&'a mut dyn TableLike> {
    let Some((first, rest)) = path.split_first() else {
        return Some(t);
    };
    if t.get(first).is_none() {
        if !create {
            return None;
        }
        let mut n = toml_edit::Table::new();
        n.set_implicit(true);
        t.insert(first, Item::Table(n));
    }
    let next = t.get_mut(first)?.as_table_like_mut()?;
    table_at(next, rest, create)
}

fn elements(item: &Item) -> Vec<&dyn TableLike> {
    match item {
        Item::ArrayOfTables(a) => a.iter().map(|t| t as &dyn TableLike).collect(),
        Item::Value(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_inline_table().map(|t| t as &dyn TableLike))
            .collect(),
        _ => Vec::new(),
    }
}

fn elements_mut(item: &mut Item) -> Vec<&mut dyn TableLike> {
    match item {
        Item::ArrayOfTables(a) => a.iter_mut().map(|t| t as &mut dyn TableLike).collect(),
        Item::Value(Value::Array(a)) => a
            .iter_mut()
            .filter_map(|v| v.as_inline_table_mut().map(|t| t as &mut dyn TableLike))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D1: &str = r#"# director 1
[global]
control_socket = "/run/halb/halb.sock"

[global.sync]
listen = "192.0.2.1:7947"
key = "0123456789abcdef0123456789abcdef"
peers = [{ name = "d2", address = "192.0.2.2:7947" }]

[[virtual_service]]
listen = "192.0.2.100:80"
real_server = [{ address = "198.51.100.10:80" }]

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = 150
unicast_source = "192.0.2.1"
unicast_peers = ["192.0.2.2"]
virtual_ipaddress = ["192.0.2.100/24"]
"#;

    fn d2() -> String {
        D1.replace("# director 1", "# director 2, another comment")
            .replace("listen = \"192.0.2.1:7947\"", "listen = \"192.0.2.2:7947\"")
            .replace(
                "name = \"d2\", address = \"192.0.2.2:7947\"",
                "name = \"d1\", address = \"192.0.2.1:7947\"",
            )
            .replace("priority = 150", "priority = 100")
            .replace(
                "unicast_source = \"192.0.2.1\"",
                "unicast_source = \"192.0.2.2\"",
            )
            .replace(
                "unicast_peers = [\"192.0.2.2\"]",
                "unicast_peers = [\"192.0.2.1\"]",
            )
    }

    #[test]
    fn node_local_keys_and_layout_are_not_drift() {
        let a = digest(D1).expect("toml");
        assert_eq!(a.len(), 64);
        assert_eq!(digest(&d2()).expect("toml"), a);
        // Key order, quoting and an inline table written out: the same.
        let reordered = D1
            .replace(
                "control_socket = \"/run/halb/halb.sock\"",
                "control_socket = '/run/halb/halb.sock'",
            )
            .replace(
                "real_server = [{ address = \"198.51.100.10:80\" }]",
                "\n[[virtual_service.real_server]]\naddress = \"198.51.100.10:80\"",
            );
        assert_eq!(digest(&reordered).expect("toml"), a);
    }

    #[test]
    fn a_real_change_is_drift() {
        let a = digest(D1).expect("toml");
        let b = digest(&D1.replace("198.51.100.10:80", "198.51.100.11:80")).expect("toml");
        assert_ne!(a, b);
        let c =
            digest(&D1.replace("virtual_router_id = 51", "virtual_router_id = 52")).expect("toml");
        assert_ne!(a, c);
        assert!(digest("[global").is_err());
        assert_eq!(digest_or_bytes("[global").len(), 64);
        assert_ne!(digest_or_bytes("[global"), digest_or_bytes("[globa"));
    }

    #[test]
    fn a_push_keeps_the_receivers_own_keys() {
        // d1 pushes a new real server; d2 keeps its priority, addresses
        // and sync table.
        let pushed = D1.replace("198.51.100.10:80", "198.51.100.11:80");
        let out = keep_local(&pushed, &d2()).expect("toml");
        assert!(out.contains("198.51.100.11:80"), "{out}");
        assert!(out.contains("priority = 100"), "{out}");
        assert!(out.contains("unicast_source = \"192.0.2.2\""), "{out}");
        assert!(out.contains("listen = \"192.0.2.2:7947\""), "{out}");
        assert!(out.contains("name = \"d1\""), "{out}");
        assert!(out.contains("# director 1"), "{out}");
        assert_eq!(digest(&out), digest(&pushed));
        // The sync table stays where it was.
        assert!(
            out.find("[global.sync]") < out.find("[[virtual_service]]"),
            "{out}"
        );
        // Pushed onto itself: unchanged.
        assert_eq!(keep_local(D1, D1).expect("toml"), D1);
    }

    #[test]
    fn a_receiver_without_a_sync_table_gets_none() {
        let local = "[global]\nworkers = 1\n";
        let out = keep_local(D1, local).expect("toml");
        assert!(!out.contains("[global.sync]"), "{out}");
        assert!(out.contains("priority = 150"));
    }

    #[test]
    fn the_sync_table_alone() {
        let only = sync_table_only(D1).expect("a sync table");
        assert!(only.contains("listen = \"192.0.2.1:7947\""), "{only}");
        assert!(!only.contains("virtual_service"), "{only}");
        assert_eq!(sync_table_only("[global]\nworkers = 1\n"), None);
        assert_eq!(sync_table_only("[global"), None);
    }

    fn pair_file(
        name: &str,
        prio: u8,
        listen: u8,
        sched: &str,
        with_sync: bool,
        http: bool,
    ) -> String {
        let mut f = String::from("[global]\nworkers = 2\n");
        if http {
            f.push_str(&format!("http_listen = \"127.0.0.{listen}:9090\"\n"));
        }
        if with_sync {
            f.push_str(&format!(
                "[global.sync]\nname = \"{name}\"\nlisten = \"192.0.2.{listen}:7947\"\n"
            ));
        }
        f.push_str(&format!(
            "[[virtual_service]]\nlisten = \"192.0.2.100:80\"\nscheduler = \"{sched}\"\n\n[[vrrp_instance]]\nname = \"VI_1\"\npriority = {prio}\nunicast_source = \"192.0.2.{listen}\"\n"
        ));
        f
    }

    proptest! {
        /// What a push writes runs the pushed config (same digest) with
        /// the receiver's own keys, whatever each side has.
        #[test]
        fn a_push_runs_the_pushed_config_with_the_receivers_keys(
            p1 in 1u8..255, p2 in 1u8..255, l1 in 1u8..9, l2 in 1u8..9,
            s1 in prop::sample::select(vec!["rr", "wrr", "lc"]),
            s2 in prop::sample::select(vec!["rr", "wrr", "lc"]),
            sync1 in any::<bool>(), sync2 in any::<bool>(), h1 in any::<bool>(), h2 in any::<bool>(),
        ) {
            let pushed = pair_file("d1", p1, l1, s1, sync1, h1);
            let local = pair_file("d2", p2, l2, s2, sync2, h2);
            let out = keep_local(&pushed, &local).expect("toml");
            prop_assert_eq!(digest(&out), digest(&pushed));
            prop_assert!(out.contains(&format!("priority = {p2}")), "{}", out);
            prop_assert!(out.contains(&format!("unicast_source = \"192.0.2.{l2}\"")), "{}", out);
            prop_assert_eq!(out.contains("name = \"d2\""), sync2, "{}", out);
            prop_assert_eq!(out.contains("[global.sync]"), sync2, "{}", out);
            prop_assert_eq!(out.contains(&format!("127.0.0.{l2}:9090")), h2, "{}", out);
            prop_assert!(out.contains(&format!("scheduler = \"{s1}\"")), "{}", out);
            // The two directors' files differ only by their own keys.
            prop_assert_eq!(digest(&pushed) == digest(&local), s1 == s2);
        }

        #[test]
        fn any_text_never_panics(s in ".{0,200}", t in ".{0,200}") {
            let _ = digest(&s);
            let _ = keep_local(&s, &t);
            let _ = keep_local(D1, &s);
        }
    }
}
