//! Pacemaker: the crm shell's `crm configure show` text and the CIB XML
//! of `cibadmin --query`, read into one model ([`Cib`]) and written as
//! halb's VRRP instances and resource groups.
//!
//! The mapping:
//! - a `group` becomes a `[[resource_group]]`; its `ocf:heartbeat:IPaddr2`
//!   (or `IPaddr`) members become the VIPs of a `[[vrrp_instance]]` the
//!   group follows (Pacemaker moves the address with the group; halb moves
//!   the group with the address), every other member a member of the group
//!   with its class, parameters, `op` timeouts and `on-fail`;
//! - a primitive in no group becomes a group of its own; a `colocation …
//!   inf: A B` puts A in B's group (after B's members), as the constraint
//!   means "A runs where B runs", in the order an `order` constraint gives;
//! - `rsc_defaults` / `meta` migration-threshold, failure-timeout and
//!   is-managed map to the group's keys; resource-stickiness to the
//!   instance's `preempt = false`;
//! - what halb cannot express (fencing devices, promotable clones, clones,
//!   location rules, properties) is named in the report with what it meant.

use crate::emit::{self, Emitter};
use crate::report::{Advice, Pos, Report};
use crate::{Input, Options, Source};
use std::collections::{BTreeMap, BTreeSet};
use toml_edit::{value, Table, Value};

/// One `name=value` with where it was written.
#[derive(Debug, Clone)]
struct Attr {
    name: String,
    value: String,
    pos: Pos,
}

#[derive(Debug, Clone)]
struct Op {
    name: String,
    attrs: Vec<Attr>,
    pos: Pos,
}

#[derive(Debug, Clone)]
struct Primitive {
    id: String,
    /// `ocf:heartbeat:IPaddr2`, `lsb:nginx`, `systemd:redis`,
    /// `stonith:fence_ipmilan`.
    agent: String,
    params: Vec<Attr>,
    meta: Vec<Attr>,
    ops: Vec<Op>,
    pos: Pos,
}

#[derive(Debug, Clone)]
struct Group {
    id: String,
    members: Vec<String>,
    meta: Vec<Attr>,
    pos: Pos,
}

/// What the input says, whichever syntax it came in.
#[derive(Debug, Default)]
struct Cib {
    primitives: Vec<Primitive>,
    groups: Vec<Group>,
    /// `colocation ID SCORE: A B`: (A, B, score, pos): A runs with B.
    colocations: Vec<(String, String, String, Pos)>,
    /// `order ID SCORE: FIRST THEN`.
    orders: Vec<(String, String, Pos)>,
    rsc_defaults: Vec<Attr>,
    /// Primitives (or groups) a clone or ms runs: not groups of their own.
    cloned: BTreeSet<String>,
    /// (statement, id, what, pos): read but not carried over.
    unmapped: Vec<(String, String, String, Advice, Pos)>,
}

pub(crate) fn import(
    inputs: &[Input],
    _source: &dyn Source,
    opts: &Options,
    out: &mut Emitter,
    report: &mut Report,
) {
    let mut cib = Cib::default();
    let mut coro = None;
    for input in inputs {
        if crate::corosync::looks_like(&input.text) {
            coro = Some(crate::corosync::read(input, report));
        } else if input.text.trim_start().starts_with('<') {
            read_xml(input, &mut cib, report);
        } else {
            read_crm(input, &mut cib, report);
        }
    }
    if report.has_errors() {
        return;
    }
    write(&cib, coro.as_ref(), opts.node.as_deref(), out, report);
}

// ---- crm shell text -------------------------------------------------------

/// Statements of the crm text: `\`-continued lines joined, each word with
/// its position.
fn statements(input: &Input) -> Vec<Vec<(String, Pos)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(String, Pos)> = Vec::new();
    for (n, line) in input.text.lines().enumerate() {
        let trimmed = line.trim_end();
        let continued = trimmed.ends_with('\\');
        let body = trimmed.strip_suffix('\\').unwrap_or(trimmed);
        if !body.trim_start().starts_with('#') {
            for (col, word) in words(body) {
                cur.push((word, Pos::new(&input.name, n + 1, col)));
            }
        }
        if !continued && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Words split on blanks, double quotes kept together (and removed);
/// each with its 1-based column.
fn words(line: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut start = 0;
    let mut quoted = false;
    let mut in_word = false;
    for (i, c) in line.chars().enumerate() {
        match c {
            '"' => {
                quoted = !quoted;
                if !in_word {
                    in_word = true;
                    start = i;
                }
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push((start + 1, std::mem::take(&mut word)));
                    in_word = false;
                }
            }
            c => {
                if !in_word {
                    in_word = true;
                    start = i;
                }
                word.push(c);
            }
        }
    }
    if in_word {
        out.push((start + 1, word));
    }
    out
}

fn attr(word: &(String, Pos)) -> Option<Attr> {
    let (name, value) = word.0.split_once('=')?;
    Some(Attr {
        name: name.to_owned(),
        value: value.to_owned(),
        pos: word.1.clone(),
    })
}

fn read_crm(input: &Input, cib: &mut Cib, report: &mut Report) {
    for st in statements(input) {
        let (kw, pos) = (&st[0].0, st[0].1.clone());
        let id = st.get(1).map(|w| w.0.clone()).unwrap_or_default();
        match kw.as_str() {
            "primitive" => {
                let Some(agent) = st.get(2) else {
                    report.error(&pos, "primitive", "a primitive needs an id and an agent (class:provider:type)", Advice::Fix("primitive ID ocf:heartbeat:TYPE params …".into()));
                    continue;
                };
                let mut p = Primitive {
                    id: id.clone(),
                    agent: full_agent(&agent.0),
                    params: Vec::new(),
                    meta: Vec::new(),
                    ops: Vec::new(),
                    pos: pos.clone(),
                };
                // params / meta / op sections, in any order.
                let mut section = "params";
                let mut i = 3;
                while i < st.len() {
                    let w = &st[i];
                    match w.0.as_str() {
                        "params" | "meta" | "utilization" => section = if w.0 == "params" { "params" } else if w.0 == "meta" { "meta" } else { "utilization" },
                        "op" => {
                            section = "op";
                            let name = st.get(i + 1).map(|n| n.0.clone()).unwrap_or_default();
                            p.ops.push(Op { name, attrs: Vec::new(), pos: w.1.clone() });
                            i += 1;
                        }
                        _ => match attr(w) {
                            Some(a) => match section {
                                "params" => p.params.push(a),
                                "meta" => p.meta.push(a),
                                "op" => {
                                    if let Some(o) = p.ops.last_mut() {
                                        o.attrs.push(a)
                                    }
                                }
                                _ => report.unmapped(&a.pos, &format!("primitive {id} utilization {}", a.name), "placement by capacity (utilization attributes)", Advice::NotSupported),
                            },
                            None => report.error(&w.1, &format!("primitive {id}"), format!("\"{}\" is not name=value", w.0), Advice::Fix("write params, meta and op attributes as name=value".into())),
                        },
                    }
                    i += 1;
                }
                cib.primitives.push(p);
            }
            "group" => {
                let mut g = Group { id, members: Vec::new(), meta: Vec::new(), pos };
                let mut in_meta = false;
                for w in st.iter().skip(2) {
                    if w.0 == "meta" || w.0 == "params" {
                        in_meta = true;
                    } else if in_meta || w.0.contains('=') {
                        if let Some(a) = attr(w) {
                            g.meta.push(a);
                        }
                    } else {
                        g.members.push(w.0.clone());
                    }
                }
                cib.groups.push(g);
            }
            "colocation" | "collocation" => {
                // colocation ID SCORE: A B [C …] (each with the next).
                let score = st.get(2).map(|w| w.0.trim_end_matches(':').to_owned()).unwrap_or_default();
                let rscs: Vec<&(String, Pos)> = st.iter().skip(3).filter(|w| !w.0.contains('=')).collect();
                if rscs.len() == 2 {
                    cib.colocations.push((rscs[0].0.clone(), rscs[1].0.clone(), score, pos));
                } else {
                    cib.unmapped.push(("colocation".into(), id, "a colocation set (more than two resources, or a resource set in brackets)".into(), Advice::Feature("put the resources in one resource_group, in start order".into()), pos));
                }
            }
            "order" => {
                let rscs: Vec<&(String, Pos)> = st.iter().skip(3).filter(|w| !w.0.contains('=')).collect();
                if rscs.len() == 2 {
                    cib.orders.push((rscs[0].0.clone(), rscs[1].0.clone(), pos));
                } else {
                    cib.unmapped.push(("order".into(), id, "an order set".into(), Advice::Feature("the members of a resource_group start in file order".into()), pos));
                }
            }
            "location" => {
                let rule = st.iter().any(|w| w.0 == "rule");
                let pingd = st.iter().any(|w| w.0.contains("pingd"));
                let (what, advice) = if pingd {
                    ("keeps the resource off a node whose ping clone (ocf:pacemaker:ping) reaches no host", Advice::Key("track_ping = { hosts = [...] } on the vrrp_instance".into()))
                } else if rule {
                    ("places the resource by a rule on node attributes", Advice::NotSupported)
                } else {
                    ("prefers (or bans) a node for the resource", Advice::Feature("the node's `priority` in its own halb.toml (the higher one is master), or `halb standby` on the other".into()))
                };
                cib.unmapped.push(("location".into(), id, what.into(), advice, pos));
            }
            "ms" | "clone" => {
                if let Some(child) = st.get(2) {
                    cib.cloned.insert(child.0.clone());
                }
                let what = if kw == "ms" { "a promotable clone (master/slave), e.g. DRBD" } else { "a clone: the resource runs on every node" };
                let advice = if kw == "ms" { Advice::NotSupported } else { Advice::Feature("a service every director runs is started outside halb (systemd), or its check is a track_* of the instance".into()) };
                cib.unmapped.push((kw.clone(), id, what.into(), advice, pos));
            }
            "property" => {
                for w in st.iter().skip(1).filter(|w| !w.0.starts_with('$') && !w.0.starts_with("cib-bootstrap")) {
                    if let Some(a) = attr(w) {
                        property(&a, cib);
                    }
                }
            }
            "rsc_defaults" | "op_defaults" => {
                for w in st.iter().skip(1).filter(|w| !w.0.starts_with('$')) {
                    if let Some(a) = attr(w) {
                        if kw == "rsc_defaults" {
                            cib.rsc_defaults.push(a);
                        } else {
                            cib.unmapped.push(("op_defaults".into(), a.name.clone(), "the default of every operation".into(), Advice::Key("monitor / start_timeout / stop_timeout per member".into()), a.pos));
                        }
                    }
                }
            }
            "node" => cib.unmapped.push(("node".into(), id.trim_end_matches(':').to_owned(), "a cluster node".into(), Advice::Feature("each director runs halb with its own priority; nodes are not listed".into()), pos)),
            "fencing_topology" | "rsc_template" | "tag" | "acl_target" | "role" | "user" | "alert" | "rsc_ticket" => cib.unmapped.push((kw.clone(), id, "a Pacemaker object halb has no equivalent of".into(), Advice::NotSupported, pos)),
            other => report.error(&pos, other, format!("\"{other}\" is not a crm configure statement"), Advice::Fix("the input is `crm configure show` output: primitive, group, ms, clone, location, colocation, order, property, rsc_defaults".into())),
        }
    }
}

/// An agent as crm writes it, in full: `Filesystem` is
/// `ocf:heartbeat:Filesystem` (crm's default class and provider), `ocf:T`
/// is `ocf:heartbeat:T`; `lsb:`, `systemd:`, `service:`, `stonith:` and
/// three-part names stay as they are.
fn full_agent(a: &str) -> String {
    match a.split(':').collect::<Vec<_>>()[..] {
        [t] => format!("ocf:heartbeat:{t}"),
        ["ocf", t] => format!("ocf:heartbeat:{t}"),
        _ => a.to_owned(),
    }
}

fn property(a: &Attr, cib: &mut Cib) {
    let (what, advice) = match a.name.as_str() {
        "stonith-enabled" => (
            "whether nodes are fenced before their resources move",
            Advice::NotSupported,
        ),
        "no-quorum-policy" => (
            "what a node without quorum does",
            Advice::Feature(
                "[global.quorum] no_quorum_policy (\"stop\" or \"ignore\") with three directors or more; two directors: VRRP decides, track_ping as the tie-breaker"
                    .into(),
            ),
        ),
        "symmetric-cluster"
        | "default-resource-stickiness"
        | "start-failure-is-fatal"
        | "maintenance-mode" => (
            "a cluster-wide default",
            Advice::Key("the resource_group keys (start_failure_is_fatal, managed)".into()),
        ),
        "dc-version"
        | "cluster-infrastructure"
        | "cluster-name"
        | "have-watchdog"
        | "last-lrm-refresh" => ("set by the cluster itself", Advice::None),
        _ => ("a cluster property", Advice::NotSupported),
    };
    cib.unmapped.push((
        "property".into(),
        a.name.clone(),
        format!("{what} ({}={})", a.name, a.value),
        advice,
        a.pos.clone(),
    ));
}

// ---- CIB XML --------------------------------------------------------------

fn read_xml(input: &Input, cib: &mut Cib, report: &mut Report) {
    let doc = match roxmltree::Document::parse(&input.text) {
        Ok(d) => d,
        Err(e) => {
            let p = e.pos();
            report.error(
                &Pos::new(&input.name, p.row as usize, p.col as usize),
                "cib",
                format!("not XML: {e}"),
                Advice::Fix("the input is the CIB as `cibadmin --query` prints it".into()),
            );
            return;
        }
    };
    let pos_of = |n: roxmltree::Node| {
        let p = doc.text_pos_at(n.range().start);
        Pos::new(&input.name, p.row as usize, p.col as usize)
    };
    let nvpairs = |n: roxmltree::Node, set: &str| -> Vec<Attr> {
        n.children()
            .filter(|c| c.has_tag_name(set))
            .flat_map(|s| s.children().filter(|c| c.has_tag_name("nvpair")))
            .map(|nv| Attr {
                name: nv.attribute("name").unwrap_or_default().to_owned(),
                value: nv.attribute("value").unwrap_or_default().to_owned(),
                pos: pos_of(nv),
            })
            .collect()
    };
    let Some(config) = doc.descendants().find(|n| n.has_tag_name("configuration")) else {
        report.error(
            &Pos::file(&input.name),
            "cib",
            "no <configuration> element",
            Advice::Fix("the input is the CIB as `cibadmin --query` prints it".into()),
        );
        return;
    };
    let primitive = |n: roxmltree::Node| -> Primitive {
        let class = n.attribute("class").unwrap_or_default();
        let agent = match n.attribute("provider") {
            Some(p) => format!("{class}:{p}:{}", n.attribute("type").unwrap_or_default()),
            None => format!("{class}:{}", n.attribute("type").unwrap_or_default()),
        };
        let ops = n
            .children()
            .filter(|c| c.has_tag_name("operations"))
            .flat_map(|o| o.children().filter(|c| c.has_tag_name("op")))
            .map(|o| Op {
                name: o.attribute("name").unwrap_or_default().to_owned(),
                attrs: o
                    .attributes()
                    .filter(|a| a.name() != "id" && a.name() != "name")
                    .map(|a| Attr {
                        name: a.name().to_owned(),
                        value: a.value().to_owned(),
                        pos: pos_of(o),
                    })
                    .collect(),
                pos: pos_of(o),
            })
            .collect();
        Primitive {
            id: n.attribute("id").unwrap_or_default().to_owned(),
            agent,
            params: nvpairs(n, "instance_attributes"),
            meta: nvpairs(n, "meta_attributes"),
            ops,
            pos: pos_of(n),
        }
    };
    for n in config.descendants() {
        let id = n.attribute("id").unwrap_or_default().to_owned();
        match n.tag_name().name() {
            "primitive" => {
                let parent = n
                    .parent()
                    .map(|p| p.tag_name().name().to_owned())
                    .unwrap_or_default();
                if parent == "clone" || parent == "master" {
                    continue; // named with its clone
                }
                cib.primitives.push(primitive(n));
            }
            "group" => {
                let members = n
                    .children()
                    .filter(|c| c.has_tag_name("primitive"))
                    .filter_map(|c| c.attribute("id"))
                    .map(str::to_owned)
                    .collect();
                cib.groups.push(Group {
                    id,
                    members,
                    meta: nvpairs(n, "meta_attributes"),
                    pos: pos_of(n),
                });
            }
            "clone" | "master" => {
                for c in n
                    .children()
                    .filter(|c| c.has_tag_name("primitive") || c.has_tag_name("group"))
                {
                    cib.cloned
                        .insert(c.attribute("id").unwrap_or_default().to_owned());
                }
                let promotable = n.tag_name().name() == "master"
                    || nvpairs(n, "meta_attributes")
                        .iter()
                        .any(|a| a.name == "promotable" && a.value == "true");
                let (what, advice) = if promotable {
                    (
                        "a promotable clone (master/slave), e.g. DRBD",
                        Advice::NotSupported,
                    )
                } else {
                    ("a clone: the resource runs on every node", Advice::Feature("a service every director runs is started outside halb (systemd), or its check is a track_* of the instance".into()))
                };
                cib.unmapped.push((
                    n.tag_name().name().into(),
                    id,
                    what.into(),
                    advice,
                    pos_of(n),
                ));
            }
            "rsc_colocation" => {
                if let (Some(a), Some(b)) = (n.attribute("rsc"), n.attribute("with-rsc")) {
                    cib.colocations.push((
                        a.into(),
                        b.into(),
                        n.attribute("score").unwrap_or("0").into(),
                        pos_of(n),
                    ));
                } else {
                    cib.unmapped.push((
                        "colocation".into(),
                        id,
                        "a colocation of resource sets".into(),
                        Advice::Feature(
                            "put the resources in one resource_group, in start order".into(),
                        ),
                        pos_of(n),
                    ));
                }
            }
            "rsc_order" => {
                if let (Some(a), Some(b)) = (n.attribute("first"), n.attribute("then")) {
                    cib.orders.push((a.into(), b.into(), pos_of(n)));
                } else {
                    cib.unmapped.push((
                        "order".into(),
                        id,
                        "an order of resource sets".into(),
                        Advice::Feature(
                            "the members of a resource_group start in file order".into(),
                        ),
                        pos_of(n),
                    ));
                }
            }
            "rsc_location" => {
                let pingd = n
                    .descendants()
                    .any(|d| d.attribute("attribute") == Some("pingd"));
                let rule = n.descendants().any(|d| d.has_tag_name("rule"));
                let (what, advice) = if pingd {
                    ("keeps the resource off a node whose ping clone (ocf:pacemaker:ping) reaches no host", Advice::Key("track_ping = { hosts = [...] } on the vrrp_instance".into()))
                } else if rule {
                    (
                        "places the resource by a rule on node attributes",
                        Advice::NotSupported,
                    )
                } else {
                    ("prefers (or bans) a node for the resource", Advice::Feature("the node's `priority` in its own halb.toml (the higher one is master), or `halb standby` on the other".into()))
                };
                cib.unmapped
                    .push(("location".into(), id, what.into(), advice, pos_of(n)));
            }
            "cluster_property_set" => {
                for a in n.children().filter(|c| c.has_tag_name("nvpair")) {
                    let at = Attr {
                        name: a.attribute("name").unwrap_or_default().into(),
                        value: a.attribute("value").unwrap_or_default().into(),
                        pos: pos_of(a),
                    };
                    property(&at, cib);
                }
            }
            "rsc_defaults" => cib.rsc_defaults.extend(nvpairs(n, "meta_attributes")),
            "op_defaults" => {
                for a in nvpairs(n, "meta_attributes") {
                    cib.unmapped.push((
                        "op_defaults".into(),
                        a.name.clone(),
                        "the default of every operation".into(),
                        Advice::Key("monitor / start_timeout / stop_timeout per member".into()),
                        a.pos,
                    ));
                }
            }
            "node" if n.parent().is_some_and(|p| p.has_tag_name("nodes")) => {
                cib.unmapped.push((
                    "node".into(),
                    n.attribute("uname").unwrap_or(&id).into(),
                    "a cluster node".into(),
                    Advice::Feature(
                        "each director runs halb with its own priority; nodes are not listed"
                            .into(),
                    ),
                    pos_of(n),
                ));
            }
            "fencing-topology" | "template" | "tags" | "acls" | "alerts" | "rsc_ticket" => {
                cib.unmapped.push((
                    n.tag_name().name().into(),
                    id,
                    "a Pacemaker object halb has no equivalent of".into(),
                    Advice::NotSupported,
                    pos_of(n),
                ));
            }
            _ => {}
        }
    }
}

// ---- writing --------------------------------------------------------------

fn is_vip(agent: &str) -> bool {
    matches!(agent, "ocf:heartbeat:IPaddr2" | "ocf:heartbeat:IPaddr")
}

/// A Pacemaker duration (`20s`, `1min`, `90`, `2m`, `500ms`) in ms.
fn duration(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1000,
        "ms" | "msec" => 1,
        "m" | "min" | "mins" => 60_000,
        "h" | "hr" | "hour" | "hours" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// halb's `on_fail` for a Pacemaker `on-fail`.
fn on_fail(v: &str) -> Option<&'static str> {
    Some(match v {
        "restart" => "restart",
        "stop" => "stop",
        "block" => "block",
        "ignore" => "ignore",
        "standby" => "standby",
        "move" => "move",
        _ => return None,
    })
}

fn is_infinity(score: &str) -> bool {
    matches!(
        score.trim_start_matches('+'),
        "inf" | "INFINITY" | "infinity" | "mandatory"
    )
}

fn write(
    cib: &Cib,
    coro: Option<&crate::corosync::Corosync>,
    node: Option<&str>,
    out: &mut Emitter,
    report: &mut Report,
) {
    let mut first = true;
    for (kw, id, what, advice, pos) in &cib.unmapped {
        let key = if id.is_empty() {
            kw.clone()
        } else {
            format!("{kw} {id}")
        };
        report.unmapped(pos, &key, what.clone(), advice.clone());
    }
    let prims: BTreeMap<&str, &Primitive> =
        cib.primitives.iter().map(|p| (p.id.as_str(), p)).collect();
    // Groups: Pacemaker's own, then a primitive in none is a group of one.
    let mut grouped: BTreeSet<&str> = BTreeSet::new();
    let mut groups: Vec<(String, Vec<String>, Vec<Attr>, Pos)> = Vec::new();
    for g in cib.groups.iter().filter(|g| !cib.cloned.contains(&g.id)) {
        for m in &g.members {
            grouped.insert(m.as_str());
        }
        groups.push((
            g.id.clone(),
            g.members.clone(),
            g.meta.clone(),
            g.pos.clone(),
        ));
    }
    for p in &cib.primitives {
        if p.agent.starts_with("stonith:") {
            report.unmapped(
                &p.pos,
                &format!("primitive {}", p.id),
                "a fencing device",
                Advice::NotSupported,
            );
        } else if cib.cloned.contains(&p.id) {
            report.unmapped(
                &p.pos,
                &format!("primitive {}", p.id),
                "runs as a clone on every node (see the clone)",
                Advice::None,
            );
        } else if !grouped.contains(p.id.as_str()) {
            groups.push((p.id.clone(), vec![p.id.clone()], Vec::new(), p.pos.clone()));
        }
    }
    // colocation A inf: B → A's group joins B's (A runs where B runs).
    for (a, b, score, pos) in &cib.colocations {
        let role = a.contains(':') || b.contains(':');
        if role {
            report.unmapped(
                pos,
                &format!("colocation {a} {b}"),
                "runs a resource with the promoted copy of a promotable clone",
                Advice::NotSupported,
            );
            continue;
        }
        if !is_infinity(score) {
            report.unmapped(
                pos,
                &format!("colocation {a} {b}"),
                format!("a preference (score {score}) to run {a} with {b}"),
                Advice::Feature("put them in one resource_group to make it a rule".into()),
            );
            continue;
        }
        let ia = groups.iter().position(|g| g.0 == *a || g.1.contains(a));
        let ib = groups.iter().position(|g| g.0 == *b || g.1.contains(b));
        match (ia, ib) {
            (Some(ia), Some(ib)) if ia != ib => {
                let moved = groups.remove(ia);
                let ib = if ia < ib { ib - 1 } else { ib };
                groups[ib].1.extend(moved.1);
                report.note(
                    pos,
                    &format!("colocation {a} {b}"),
                    format!("{a} runs where {b} runs"),
                    Advice::Feature(format!(
                        "{a}'s members follow {b}'s in resource group {}",
                        groups[ib].0
                    )),
                );
            }
            (Some(_), Some(_)) => {}
            _ => report.unmapped(
                pos,
                &format!("colocation {a} {b}"),
                "names a resource that is not a primitive or group here",
                Advice::None,
            ),
        }
    }
    // order FIRST then THEN inside one group: THEN moved after FIRST.
    for (first, then, pos) in &cib.orders {
        if first.contains(':') || then.contains(':') {
            report.unmapped(
                pos,
                &format!("order {first} {then}"),
                "orders an action of a promotable clone (promote, demote)",
                Advice::NotSupported,
            );
            continue;
        }
        let members = |g: &(String, Vec<String>, Vec<Attr>, Pos), r: &str| -> Option<Vec<String>> {
            if g.0 == r {
                return Some(g.1.clone());
            }
            g.1.iter().any(|m| m == r).then(|| vec![r.to_owned()])
        };
        let mut done = false;
        for g in groups.iter_mut() {
            let (Some(f), Some(t)) = (members(g, first), members(g, then)) else {
                continue;
            };
            if f == g.1 || t == g.1 {
                break;
            }
            let last_first = g.1.iter().rposition(|m| f.contains(m));
            let first_then = g.1.iter().position(|m| t.contains(m));
            if let (Some(lf), Some(ft)) = (last_first, first_then) {
                if ft < lf {
                    let moved: Vec<String> =
                        g.1.iter().filter(|m| t.contains(m)).cloned().collect();
                    g.1.retain(|m| !t.contains(m));
                    let at =
                        g.1.iter()
                            .rposition(|m| f.contains(m))
                            .map_or(g.1.len(), |i| i + 1);
                    for (k, m) in moved.into_iter().enumerate() {
                        g.1.insert(at + k, m);
                    }
                }
            }
            report.note(
                pos,
                &format!("order {first} {then}"),
                format!("{then} starts after {first}"),
                Advice::Feature(format!("the member order of resource group {}", g.0)),
            );
            done = true;
            break;
        }
        if !done {
            report.note(pos, &format!("order {first} {then}"), format!("{then} starts after {first}"), Advice::Feature("each resource_group's members start in file order; between groups, both follow their instance".into()));
        }
    }
    // Cluster-wide defaults.
    let mut defaults: BTreeMap<&str, &Attr> = BTreeMap::new();
    for a in &cib.rsc_defaults {
        defaults.insert(a.name.as_str(), a);
    }
    let mut vrid = 50;
    for (gid, members, meta, pos) in &groups {
        let mut vips: Vec<String> = Vec::new();
        let mut nic: Option<String> = None;
        let mut group = emit::table(pos, &format!("resource group {gid}"));
        emit::set_str(&mut group, "name", gid);
        let mut nmembers = 0;
        for m in members {
            let Some(p) = prims.get(m.as_str()) else {
                report.unmapped(
                    pos,
                    &format!("group {gid}"),
                    format!(
                        "member {m} is not a primitive here (a clone or a group inside a group)"
                    ),
                    Advice::NotSupported,
                );
                continue;
            };
            if is_vip(&p.agent) {
                let get = |k: &str| {
                    p.params
                        .iter()
                        .find(|a| a.name == k)
                        .map(|a| a.value.clone())
                };
                match get("ip") {
                    Some(ip) => {
                        let prefix = get("cidr_netmask").unwrap_or_else(|| {
                            if ip.contains(':') {
                                "128".into()
                            } else {
                                "32".into()
                            }
                        });
                        vips.push(format!("{ip}/{prefix}"));
                        if nic.is_none() {
                            nic = get("nic");
                        }
                        report.note(
                            &p.pos,
                            &format!("primitive {}", p.id),
                            "the address moves with the group",
                            Advice::Feature(format!(
                                "a VIP of vrrp_instance {gid}: the group follows the instance"
                            )),
                        );
                    }
                    None => report.error(
                        &p.pos,
                        &format!("primitive {}", p.id),
                        "an IPaddr2 primitive without `ip`",
                        Advice::Fix("params ip=ADDRESS".into()),
                    ),
                }
                for a in p
                    .params
                    .iter()
                    .filter(|a| !matches!(a.name.as_str(), "ip" | "cidr_netmask" | "nic"))
                {
                    report.unmapped(
                        &a.pos,
                        &format!("primitive {} {}", p.id, a.name),
                        "an IPaddr2 parameter",
                        Advice::NotSupported,
                    );
                }
                continue;
            }
            if p.agent.starts_with("stonith:") {
                report.unmapped(
                    &p.pos,
                    &format!("primitive {}", p.id),
                    "a fencing device",
                    Advice::NotSupported,
                );
                continue;
            }
            let mut t = emit::table(&p.pos, &format!("primitive {}", p.id));
            emit::set_str(&mut t, "name", &p.id);
            let agent = p
                .agent
                .strip_prefix("service:")
                .map(|s| format!("lsb:{s}"))
                .unwrap_or_else(|| p.agent.clone());
            emit::set_str(&mut t, "agent", &agent);
            if agent.starts_with("ocf:") && !p.params.is_empty() {
                let mut params = toml_edit::InlineTable::new();
                for a in &p.params {
                    params.insert(&a.name, Value::from(a.value.as_str()));
                }
                params.fmt();
                t.insert("params", value(params));
            } else {
                for a in &p.params {
                    report.unmapped(
                        &a.pos,
                        &format!("primitive {} {}", p.id, a.name),
                        "a parameter of a non-OCF agent",
                        Advice::None,
                    );
                }
            }
            for op in &p.ops {
                let get = |k: &str| op.attrs.iter().find(|a| a.name == k);
                let ms = |k: &str| get(k).and_then(|a| duration(&a.value));
                match op.name.as_str() {
                    "monitor" => {
                        if get("role").is_some() {
                            report.unmapped(
                                &op.pos,
                                &format!("primitive {} op monitor role", p.id),
                                "a monitor of one role of a promotable resource",
                                Advice::NotSupported,
                            );
                            continue;
                        }
                        let mut pairs = Vec::new();
                        if let Some(i) = ms("interval") {
                            pairs.push(("interval", Value::from(emit::duration_ms(i))));
                        }
                        if let Some(i) = ms("timeout") {
                            pairs.push(("timeout", Value::from(emit::duration_ms(i.max(1000)))));
                        }
                        if !pairs.is_empty() {
                            t.insert("monitor", value(emit::inline(pairs)));
                        }
                        if let Some(f) = get("on-fail") {
                            match on_fail(&f.value) {
                                Some(v) => emit::set_str(&mut t, "on_fail", v),
                                None => report.unmapped(
                                    &f.pos,
                                    &format!("primitive {} op monitor on-fail", p.id),
                                    format!("on-fail={}", f.value),
                                    Advice::NotSupported,
                                ),
                            }
                        }
                    }
                    "start" | "stop" => {
                        if let Some(i) = ms("timeout") {
                            emit::set_str(
                                &mut t,
                                &format!("{}_timeout", op.name),
                                emit::duration_ms(i.max(1000)),
                            );
                        }
                        if let Some(f) = get("on-fail") {
                            match (op.name.as_str(), on_fail(&f.value)) {
                                ("start", Some(v)) if v != "ignore" => {
                                    emit::set_str(&mut t, "start_on_fail", v)
                                }
                                ("stop", Some("block")) => {
                                    emit::set_str(&mut t, "stop_on_fail", "block")
                                }
                                _ => report.note(
                                    &f.pos,
                                    &format!("primitive {} op {} on-fail", p.id, op.name),
                                    format!("on-fail={}", f.value),
                                    Advice::Feature(if op.name == "stop" {
                                        "a failed stop blocks the group (halb does not fence yet)"
                                            .into()
                                    } else {
                                        "the default, move".into()
                                    }),
                                ),
                            }
                        }
                    }
                    other => report.unmapped(
                        &op.pos,
                        &format!("primitive {} op {other}", p.id),
                        format!("the {other} operation's settings"),
                        Advice::None,
                    ),
                }
            }
            for a in &p.meta {
                meta_attr(a, &format!("primitive {}", p.id), &mut group, report);
            }
            emit::push_member(&mut group, t);
            nmembers += 1;
        }
        for a in meta {
            meta_attr(a, &format!("group {gid}"), &mut group, report);
        }
        for (k, a) in &defaults {
            if !group.contains_key(&k.replace('-', "_")) {
                meta_attr(a, "rsc_defaults", &mut group, report);
            }
        }
        let sticky = meta
            .iter()
            .chain(defaults.values().copied())
            .any(|a| a.name == "resource-stickiness" && a.value != "0");
        if vips.is_empty() {
            report.unmapped(pos, &format!("group {gid}"), "a group with no IPaddr2 address: halb runs a group on the director where a VRRP instance is master", Advice::Feature(format!("a vrrp_instance with the service's VIP, followed by resource group {gid} (written with a placeholder address from TEST-NET-1: replace it)")));
            vips.push("192.0.2.1/32".into());
        }
        vrid += 1;
        let mut inst = emit::table(pos, &format!("the addresses of group {gid}"));
        emit::set_str(&mut inst, "name", gid);
        let iface = nic.clone().unwrap_or_else(|| "eth0".into());
        if nic.is_none() {
            report.note(
                pos,
                &format!("group {gid}"),
                "IPaddr2 without `nic` picks the interface of the address's subnet",
                Advice::Key("interface = \"eth0\" (written: check it)".into()),
            );
        }
        emit::set_str(&mut inst, "interface", iface);
        emit::set_int(&mut inst, "virtual_router_id", vrid);
        emit::set_int(&mut inst, "priority", 100);
        if sticky {
            emit::set_bool(&mut inst, "preempt", false);
        }
        emit::set_str_array(&mut inst, "virtual_ipaddress", &vips);
        if let Some(c) = coro {
            c.apply(&mut inst, node, report, first);
            first = false;
        }
        report.note(pos, &format!("group {gid}"), format!("Pacemaker picks the node; halb elects a master per VRRP instance (virtual_router_id {vrid}, priority 100 written)"), Advice::Key("priority: higher on the director that should run the group (the other keeps 100)".into()));
        out.vrrp_instance(inst);
        if nmembers > 0 {
            emit::set_str(&mut group, "follows", gid);
            out.resource_group(group);
        }
    }
}

/// A meta attribute of a primitive, a group or rsc_defaults.
fn meta_attr(a: &Attr, owner: &str, group: &mut Table, report: &mut Report) {
    let key = format!("{owner} meta {}", a.name);
    match a.name.as_str() {
        "migration-threshold" => match a.value.parse::<i64>() {
            Ok(n) if n > 0 => emit::set_int(group, "migration_threshold", n),
            _ if is_infinity(&a.value) || a.value == "0" => {
                emit::set_int(group, "migration_threshold", 0)
            }
            _ => report.unmapped(
                &a.pos,
                &key,
                format!("migration-threshold={}", a.value),
                Advice::Key("migration_threshold = N".into()),
            ),
        },
        "failure-timeout" => match duration(&a.value) {
            Some(ms) if ms >= 1000 => {
                emit::set_str(group, "failure_timeout", emit::duration_ms(ms))
            }
            Some(_) => {}
            None => report.unmapped(
                &a.pos,
                &key,
                format!("failure-timeout={}", a.value),
                Advice::Key("failure_timeout".into()),
            ),
        },
        "is-managed" => emit::set_bool(group, "managed", a.value != "false"),
        "resource-stickiness" => report.note(
            &a.pos,
            &key,
            "keeps the group where it runs",
            Advice::Key("preempt = false on the instance (written)".into()),
        ),
        "target-role" => report.unmapped(
            &a.pos,
            &key,
            format!("target-role={}", a.value),
            Advice::Feature("`halb standby` / `halb resource` at run time".into()),
        ),
        _ => report.unmapped(
            &a.pos,
            &key,
            format!("{}={}", a.name, a.value),
            Advice::NotSupported,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{import as run, Format, MemorySource};

    const CRM: &str = r#"node 1: node1
node 2: node2
primitive fs ocf:heartbeat:Filesystem \
	params device="/dev/drbd0" directory="/srv" fstype=ext4 \
	op monitor interval=20s timeout=40s on-fail=restart \
	op start timeout=60s interval=0 \
	op stop timeout=60s interval=0
primitive vip IPaddr2_placeholder
primitive web lsb:nginx \
	op monitor interval=10s
primitive cache systemd:memcached
group webgroup vip fs web \
	meta migration-threshold=3
colocation cache-with-web inf: cache webgroup
order web-then-cache Mandatory: webgroup cache
property cib-bootstrap-options: \
	stonith-enabled=false \
	no-quorum-policy=ignore
rsc_defaults rsc-options: \
	resource-stickiness=100 \
	failure-timeout=60s
"#;

    fn crm() -> String {
        CRM.replace("IPaddr2_placeholder", "ocf:heartbeat:IPaddr2 params ip=192.0.2.10 cidr_netmask=24 nic=eth0 op monitor interval=10s")
    }

    #[test]
    fn a_crm_group_becomes_an_instance_and_a_group() {
        let out = run(
            Format::Pacemaker,
            &[Input::new("crm.txt", crm())],
            &MemorySource::default(),
            &Options::default(),
        )
        .unwrap();
        let t = &out.toml;
        assert!(t.contains("virtual_ipaddress = [\"192.0.2.10/24\"]"), "{t}");
        assert!(t.contains("interface = \"eth0\""), "{t}");
        assert!(t.contains("follows = \"webgroup\""), "{t}");
        assert!(t.contains("agent = \"ocf:heartbeat:Filesystem\""), "{t}");
        assert!(
            t.contains("monitor = { interval = \"20s\", timeout = \"40s\" }"),
            "{t}"
        );
        assert!(t.contains("start_timeout = \"60s\""), "{t}");
        assert!(t.contains("agent = \"systemd:memcached\""), "{t}");
        assert!(t.contains("migration_threshold = 3"), "{t}");
        assert!(t.contains("failure_timeout = \"60s\""), "{t}");
        assert!(t.contains("preempt = false"), "{t}");
        // The colocation put cache after the group's members.
        let fs = t.find("name = \"fs\"").unwrap();
        let web = t.find("name = \"web\"").unwrap();
        let cache = t.find("name = \"cache\"").unwrap();
        assert!(fs < web && web < cache, "{t}");
        let r = out.report.render();
        assert!(r.contains("crm.txt:14:1"), "{r}");
        assert!(r.contains("stonith-enabled"), "{r}");
        crate::check(t, "halb.toml").unwrap();
    }

    #[test]
    fn the_same_cluster_as_cib_xml() {
        let xml = r#"<cib><configuration><crm_config><cluster_property_set id="o">
<nvpair id="a" name="stonith-enabled" value="false"/></cluster_property_set></crm_config>
<nodes><node id="1" uname="node1"/></nodes>
<resources><group id="webgroup">
 <primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2">
  <instance_attributes id="vip-i"><nvpair id="v1" name="ip" value="192.0.2.10"/><nvpair id="v2" name="cidr_netmask" value="24"/><nvpair id="v3" name="nic" value="eth0"/></instance_attributes>
 </primitive>
 <primitive id="web" class="lsb" type="nginx">
  <operations><op id="w-m" name="monitor" interval="10s" timeout="20s" on-fail="restart"/></operations>
 </primitive>
</group>
<master id="ms_drbd"><primitive id="drbd" class="ocf" provider="linbit" type="drbd"/></master>
</resources>
<constraints><rsc_colocation id="c" rsc="webgroup" with-rsc="ms_drbd" with-rsc-role="Master" score="INFINITY"/>
<rsc_location id="l" rsc="webgroup"><rule id="r" score="-INFINITY"><expression id="e" attribute="pingd" operation="not_defined"/></rule></rsc_location></constraints>
</configuration></cib>"#;
        let out = run(
            Format::Pacemaker,
            &[Input::new("cib.xml", xml)],
            &MemorySource::default(),
            &Options::default(),
        )
        .unwrap();
        assert!(out.toml.contains("agent = \"lsb:nginx\""), "{}", out.toml);
        assert!(
            out.toml.contains("virtual_ipaddress = [\"192.0.2.10/24\"]"),
            "{}",
            out.toml
        );
        let r = out.report.render();
        assert!(r.contains("promotable"), "{r}");
        assert!(r.contains("track_ping"), "{r}");
        crate::check(&out.toml, "halb.toml").unwrap();
    }

    #[test]
    fn corosync_conf_gives_the_timings_and_addresses() {
        let coro = "totem {\n version: 2\n token: 3000\n}\nnodelist {\n node {\n  name: node1\n  ring0_addr: 192.0.2.1\n }\n node {\n  name: node2\n  ring0_addr: 192.0.2.2\n }\n}\n";
        let opts = Options {
            node: Some("node2".into()),
            ..Options::default()
        };
        let out = run(
            Format::Pacemaker,
            &[
                Input::new("crm.txt", crm()),
                Input::new("corosync.conf", coro),
            ],
            &MemorySource::default(),
            &opts,
        )
        .unwrap();
        let t = &out.toml;
        assert!(t.contains("advert_interval = \"1s\""), "{t}");
        assert!(t.contains("unicast_source = \"192.0.2.2\""), "{t}");
        assert!(t.contains("unicast_peers = [\"192.0.2.1\"]"), "{t}");
        assert!(
            out.report
                .render()
                .contains("corosync.conf:3:2: note: totem.token"),
            "{}",
            out.report.render()
        );
        let opts = Options {
            node: Some("node9".into()),
            ..Options::default()
        };
        let e = run(
            Format::Pacemaker,
            &[
                Input::new("crm.txt", crm()),
                Input::new("corosync.conf", coro),
            ],
            &MemorySource::default(),
            &opts,
        )
        .unwrap_err();
        assert!(e.render().contains("node1, node2"), "{}", e.render());
    }

    #[test]
    fn a_cloned_primitive_is_no_group_of_its_own() {
        let text = "primitive drbd ocf:linbit:drbd params drbd_resource=r0\n\
                    primitive ping ocf:pacemaker:ping params host_list=192.0.2.254\n\
                    ms ms_drbd drbd meta master-max=1\nclone cl_ping ping\n\
                    primitive stonith-a stonith:fence_ipmilan params ip=192.0.2.50\n";
        let out = run(
            Format::Pacemaker,
            &[Input::new("c", text)],
            &MemorySource::default(),
            &Options::default(),
        )
        .unwrap();
        assert!(!out.toml.contains("resource_group"), "{}", out.toml);
        assert!(!out.toml.contains("vrrp_instance"), "{}", out.toml);
        let r = out.report.render();
        assert!(r.contains("c:3:1: unmapped: ms ms_drbd"), "{r}");
        assert!(
            r.contains("c:5:1: unmapped: primitive stonith-a: a fencing device"),
            "{r}"
        );
    }

    #[test]
    fn bad_input_is_a_positioned_error() {
        let e = run(
            Format::Pacemaker,
            &[Input::new(
                "x",
                "primitive a ocf:heartbeat:Dummy\nfrobnicate b\n",
            )],
            &MemorySource::default(),
            &Options::default(),
        )
        .unwrap_err();
        assert!(e.render().contains("x:2:1"), "{}", e.render());
        let e = run(
            Format::Pacemaker,
            &[Input::new("c.xml", "<cib><configuration>")],
            &MemorySource::default(),
            &Options::default(),
        )
        .unwrap_err();
        assert!(e.render().contains("c.xml:"), "{}", e.render());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 1000, ..Default::default() })]
        /// Mutated crm text never panics; what is accepted passes halb's
        /// check; every error of the text is positioned.
        #[test]
        fn mutated_crm_never_panics_and_errors_are_positioned(
            ops in proptest::collection::vec((0usize..100_000, proptest::prelude::any::<u8>()), 1..8),
        ) {
            let text = crate::mutate(&crm(), &ops, b"==:\"\\ \n9x<>");
            match run(Format::Pacemaker, &[Input::new("crm", text.as_str())], &MemorySource::default(), &Options::default()) {
                Ok(out) => {
                    if let Err(e) = crate::check(&out.toml, "imported.toml") {
                        proptest::prop_assert!(false, "{}\n{}", e.render(), text);
                    }
                }
                Err(e) => {
                    proptest::prop_assert!(!e.findings.is_empty());
                    for f in &e.findings {
                        proptest::prop_assert!(f.line >= 1 && f.col >= 1, "unpositioned: {}", f);
                    }
                }
            }
        }
    }
}
