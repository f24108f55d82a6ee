//! corosync.conf, the membership half of a Pacemaker cluster: its blocks
//! (`totem`, `nodelist`, `quorum`, `logging`) read into [`Corosync`], then
//! applied to the VRRP instances `pacemaker.rs` writes — the token timeout
//! becomes the advert interval (a backup takes over after about three
//! adverts, as corosync declares a node lost after one token timeout), the
//! local node's `ring0_addr` and the peers' the unicast addresses, and the
//! rest is reported with what it did.

use crate::emit;
use crate::report::{Advice, Pos, Report};
use crate::Input;
use toml_edit::Table;

/// `key: value` with its place, and the block path it is in.
#[derive(Debug, Clone)]
struct Entry {
    path: String,
    key: String,
    value: String,
    pos: Pos,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    pub name: Option<String>,
    pub nodeid: Option<String>,
    /// ring0_addr, ring1_addr, … in ring order.
    pub rings: Vec<String>,
    pub pos: Option<Pos>,
}

/// What the importer uses of a corosync.conf.
#[derive(Debug, Default)]
pub(crate) struct Corosync {
    pub file: String,
    pub token_ms: Option<(u64, Pos)>,
    pub nodes: Vec<Node>,
    pub two_node: bool,
}

/// Does this text look like a corosync.conf?
pub(crate) fn looks_like(text: &str) -> bool {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .any(|l| l.starts_with("totem") && l.ends_with('{'))
}

/// Read `input`; parse errors and unmapped keys into `report`.
pub(crate) fn read(input: &Input, report: &mut Report) -> Corosync {
    let mut entries = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    for (n, raw) in input.text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let col = raw.len() - raw.trim_start().len() + 1;
        let pos = Pos::new(&input.name, n + 1, col);
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_suffix('{') {
            stack.push(name.trim().to_owned());
        } else if line == "}" {
            if stack.pop().is_none() {
                report.error(
                    &pos,
                    "}",
                    "a closing brace with no block open",
                    Advice::Fix("remove it".into()),
                );
            }
        } else if let Some((k, v)) = line.split_once(':') {
            entries.push(Entry {
                path: stack.join("."),
                key: k.trim().to_owned(),
                value: v.trim().to_owned(),
                pos,
            });
        } else {
            report.error(
                &pos,
                line,
                "not `key: value`, `name {` or `}`",
                Advice::Fix("corosync.conf lines are `key: value` inside blocks".into()),
            );
        }
    }
    if !stack.is_empty() {
        report.error(
            &Pos::new(&input.name, input.text.lines().count().max(1), 1),
            &stack.join("."),
            "a block is not closed",
            Advice::Fix("add the closing `}`".into()),
        );
    }
    let mut c = Corosync {
        file: input.name.clone(),
        ..Corosync::default()
    };
    let mut rrp = None;
    let mut interfaces = 0;
    for e in &entries {
        let full = if e.path.is_empty() {
            e.key.clone()
        } else {
            format!("{}.{}", e.path, e.key)
        };
        match (e.path.as_str(), e.key.as_str()) {
            ("totem", "token") => match e.value.parse::<u64>() {
                Ok(ms) if ms > 0 => c.token_ms = Some((ms, e.pos.clone())),
                _ => report.error(&e.pos, &full, format!("\"{}\" is not a number of milliseconds", e.value), Advice::Fix("token: 3000".into())),
            },
            ("totem", "version" | "cluster_name" | "config_version" | "ip_version") => {}
            ("totem", "transport") => report.note(&e.pos, &full, format!("corosync's transport ({})", e.value), Advice::Feature("VRRP adverts, unicast to the peer's address".into())),
            ("totem", "rrp_mode") => rrp = Some(e.pos.clone()),
            ("totem", "crypto_cipher" | "crypto_hash" | "secauth") => report.unmapped(&e.pos, &full, format!("corosync's encryption and authentication ({})", e.value), Advice::Key("auth = { type = \"hmac-sha256\", key = … } on each vrrp_instance (a new key, the same on both directors)".into())),
            ("totem", "consensus" | "join" | "token_retransmits_before_loss_const" | "max_messages" | "send_join" | "token_retransmit" | "hold" | "merge" | "downcheck" | "fail_recv_const" | "seqno_unchanged_const" | "heartbeat_failures_allowed" | "max_network_delay" | "window_size" | "knet_pmtud_interval" | "knet_compression_model" | "token_coefficient" | "netmtu") => report.unmapped(&e.pos, &full, "a detail of corosync's totem protocol", Advice::Feature("VRRP's master-down interval (3 × advert_interval + skew)".into())),
            (p, _) if p.starts_with("totem.interface") => {
                if e.key == "ringnumber" || e.key == "linknumber" {
                    interfaces += 1;
                }
                report.unmapped(&e.pos, &full, "a totem interface (ring or link) setting", Advice::Feature("the instance's `interface`, `unicast_source`, `unicast_peers` and `paths`".into()));
            }
            ("nodelist.node", _) => {}
            ("quorum", "provider") => {}
            ("quorum", "two_node") => c.two_node = e.value == "1",
            ("quorum", k) => report.unmapped(&e.pos, &full, format!("votequorum's {k}"), Advice::Feature("two directors: VRRP decides; track_ping as the tie-breaker".into())),
            (p, _) if p == "logging" || p.starts_with("logging.") => report.unmapped(&e.pos, &full, "corosync's logging", Advice::Feature("halb logs to stderr or the journal (--log-format, --log-level)".into())),
            _ => report.unmapped(&e.pos, &full, "a corosync setting", Advice::NotSupported),
        }
    }
    // Nodes: each `node {}` block's entries, in order.
    let mut cur: Option<Node> = None;
    let mut last_pos: Option<Pos> = None;
    for e in entries.iter().filter(|e| e.path == "nodelist.node") {
        // A new node starts when a key repeats (no block boundary is kept).
        let repeat = cur.as_ref().is_some_and(|n| match e.key.as_str() {
            "name" => n.name.is_some(),
            "nodeid" => n.nodeid.is_some(),
            "ring0_addr" => !n.rings.is_empty(),
            _ => false,
        });
        if repeat {
            if let Some(n) = cur.take() {
                c.nodes.push(n);
            }
        }
        let n = cur.get_or_insert_with(|| Node {
            pos: Some(e.pos.clone()),
            ..Node::default()
        });
        last_pos = Some(e.pos.clone());
        match e.key.as_str() {
            "name" => n.name = Some(e.value.clone()),
            "nodeid" => n.nodeid = Some(e.value.clone()),
            k if k.starts_with("ring") && k.ends_with("_addr") => n.rings.push(e.value.clone()),
            k => report.unmapped(
                &e.pos,
                &format!("nodelist.node.{k}"),
                "a node setting",
                Advice::None,
            ),
        }
    }
    if let Some(n) = cur.take() {
        c.nodes.push(n);
    }
    if let Some(pos) = rrp {
        report.unmapped(&pos, "totem.rrp_mode", "corosync 2's redundant ring protocol (with totem interface blocks): corosync 3 no longer accepts it (knet links replace it)", Advice::Feature("a second link is a `paths` entry of the instance".into()));
    } else if interfaces > 1 {
        report.note(
            &Pos::file(&input.name),
            "totem.interface",
            "several rings or links",
            Advice::Feature("each extra ring is a `paths` entry".into()),
        );
    }
    if c.nodes.len() > 2 {
        if let Some(p) = &last_pos {
            report.unmapped(
                p,
                "nodelist",
                format!(
                    "{} nodes: quorum among three or more directors",
                    c.nodes.len()
                ),
                Advice::Feature(
                    "[global.quorum] provider = \"corosync\", with this corosync.conf still running on every director"
                        .into(),
                ),
            );
        }
    }
    c
}

/// The advert interval for a token timeout: a third of it (VRRPv3,
/// centiseconds), so the failover time stays about the token timeout.
pub(crate) fn advert_ms(token_ms: u64) -> u64 {
    (token_ms / 3 / 10 * 10).clamp(10, 40_950)
}

impl Corosync {
    /// Apply to one VRRP instance: timings, and with `node` (the
    /// director this file is for) the unicast addresses.
    pub(crate) fn apply(
        &self,
        inst: &mut Table,
        node: Option<&str>,
        report: &mut Report,
        first: bool,
    ) {
        let token = self.token_ms.as_ref().map(|(t, _)| *t).unwrap_or(1000);
        let adv = advert_ms(token);
        emit::set_int(inst, "version", 3);
        emit::set_str(inst, "advert_interval", emit::duration_ms(adv));
        if first {
            let pos = self
                .token_ms
                .as_ref()
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| Pos::file(&self.file));
            report.note(&pos, "totem.token", format!("a node is lost after the token timeout, {token} ms (corosync 3's default 1000 ms when not written); halb: advert_interval = \"{}\" (VRRPv3), so a backup takes over after 3 × {} + skew, about {} ms", emit::duration_ms(adv), emit::duration_ms(adv), 3 * adv + adv * (256 - 100) / 256), Advice::Key("advert_interval".into()));
        }
        let Some(me) = node else {
            if first && !self.nodes.is_empty() {
                report.note(&Pos::file(&self.file), "nodelist", "the nodes' addresses", Advice::Feature("run the import with --node NAME (once per director) to write unicast_source and unicast_peers".into()));
            }
            return;
        };
        let Some(local) = self.nodes.iter().find(|n| {
            n.name.as_deref() == Some(me) || n.rings.first().map(String::as_str) == Some(me)
        }) else {
            if first {
                report.error(
                    &Pos::file(&self.file),
                    "nodelist",
                    format!("--node {me} is not in the nodelist"),
                    Advice::Fix(format!(
                        "one of: {}",
                        self.nodes
                            .iter()
                            .filter_map(|n| n.name.clone())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                );
            }
            return;
        };
        let peers: Vec<&Node> = self
            .nodes
            .iter()
            .filter(|n| !std::ptr::eq(*n, local))
            .collect();
        if let (Some(src), [peer]) = (local.rings.first(), &peers[..]) {
            if let Some(dst) = peer.rings.first() {
                emit::set_str(inst, "unicast_source", src);
                emit::set_str_array(inst, "unicast_peers", &[dst]);
            }
            if first && local.rings.len() > 1 {
                report.note(local.pos.as_ref().unwrap_or(&Pos::file(&self.file)), "nodelist.node.ring1_addr", format!("a second ring ({} to {})", local.rings[1], peer.rings.get(1).map_or("?", String::as_str)), Advice::Feature("a `paths` entry of the instance (halb to halb, with HMAC auth): add it with the interface of that address".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "totem {\n    version: 2\n    cluster_name: web\n    transport: knet\n    token: 3000\n    crypto_cipher: aes256\n}\nnodelist {\n    node {\n        name: node1\n        nodeid: 1\n        ring0_addr: 192.0.2.1\n        ring1_addr: 198.51.100.1\n    }\n    node {\n        name: node2\n        nodeid: 2\n        ring0_addr: 192.0.2.2\n        ring1_addr: 198.51.100.2\n    }\n}\nquorum {\n    provider: corosync_votequorum\n    two_node: 1\n}\nlogging {\n    to_syslog: yes\n}\n";

    #[test]
    fn nodes_timings_and_the_report() {
        let mut r = Report::default();
        let c = read(&Input::new("corosync.conf", CONF), &mut r);
        assert!(looks_like(CONF));
        assert_eq!(c.nodes.len(), 2);
        assert_eq!(c.nodes[1].rings, ["192.0.2.2", "198.51.100.2"]);
        assert!(c.two_node);
        assert_eq!(advert_ms(3000), 1000);
        let mut t = Table::new();
        c.apply(&mut t, Some("node1"), &mut r, true);
        let s = t.to_string();
        assert!(s.contains("unicast_source = \"192.0.2.1\""), "{s}");
        assert!(s.contains("unicast_peers = [\"192.0.2.2\"]"), "{s}");
        assert!(s.contains("advert_interval = \"1s\""), "{s}");
        let out = r.render();
        assert!(
            out.contains("corosync.conf:6:5: unmapped: totem.crypto_cipher"),
            "{out}"
        );
        assert!(out.contains("second ring"), "{out}");
        assert!(!r.has_errors(), "{out}");
    }

    #[test]
    fn corosync_2_rrp_and_bad_lines() {
        let mut r = Report::default();
        read(
            &Input::new(
                "c",
                "totem {\n rrp_mode: passive\n interface {\n  ringnumber: 0\n }\n}\n",
            ),
            &mut r,
        );
        assert!(
            r.render().contains("corosync 3 no longer accepts it"),
            "{}",
            r.render()
        );
        let mut r = Report::default();
        read(&Input::new("c", "totem {\n token 3000\n"), &mut r);
        let out = r.render();
        assert!(out.contains("c:2:2: error"), "{out}");
        assert!(out.contains("not closed"), "{out}");
    }

    #[test]
    fn three_nodes_point_to_global_quorum() {
        let mut r = Report::default();
        let conf = "nodelist {\n node {\n  nodeid: 1\n  ring0_addr: 192.0.2.1\n }\n node {\n  nodeid: 2\n  ring0_addr: 192.0.2.2\n }\n node {\n  nodeid: 3\n  ring0_addr: 192.0.2.3\n }\n}\n";
        let c = read(&Input::new("corosync.conf", conf), &mut r);
        assert_eq!(c.nodes.len(), 3);
        let out = r.render();
        assert!(
            out.contains("3 nodes: quorum among three or more directors")
                && out.contains("[global.quorum] provider = \"corosync\""),
            "{out}"
        );
    }
}
