//! `[[resource_group]]` and its `[[resource_group.member]]`s: the ordered
//! agents that run where the followed VRRP instance (or sync group) is
//! master. Each group is checked on its own, then across groups (unique
//! group names, member names unique across all groups). [`check_agents`]
//! checks the members against the agents installed (an I/O the caller
//! does, through [`AgentLookup`]), with the same positioned errors.

use super::{Cx, Field, Kind, Node, Span, Tbl, Want};
use crate::diag::{ConfigErrors, Problem};
use crate::suggest::closest;
use crate::values::quote;
use crate::Config;
use halb_resource::{Agent, Follows, GroupSpec, MemberSpec, MetaData, OnFail, OpSpec};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use toml_edit::ImDocument;

const GROUP_KEYS: &[&str] = &[
    "name",
    "follows",
    "migration_threshold",
    "failure_timeout",
    "start_failure_is_fatal",
    "managed",
    "alert",
    "member",
];
const MEMBER_KEYS: &[&str] = &[
    "name",
    "agent",
    "params",
    "monitor",
    "start_timeout",
    "stop_timeout",
    "on_fail",
    "start_on_fail",
    "stop_on_fail",
];
const MONITOR_KEYS: &[&str] = &["interval", "timeout"];

/// Pacemaker's names (meta attributes, crm shell) and where they went.
const GROUP_HINTS: &[(&str, &str)] = &[
    (
        "members",
        "write each member as a [[resource_group.member]] table",
    ),
    (
        "resources",
        "write each member as a [[resource_group.member]] table",
    ),
    (
        "primitive",
        "write each member as a [[resource_group.member]] table",
    ),
    ("follow", "did you mean `follows`?"),
    (
        "vrrp_instance",
        "write follows = \"VI_1\" (a vrrp_instance or vrrp_sync_group name)",
    ),
    ("migration-threshold", "did you mean `migration_threshold`?"),
    ("failure-timeout", "did you mean `failure_timeout`?"),
    ("is_managed", "did you mean `managed`?"),
    ("is-managed", "did you mean `managed`?"),
    ("maintenance", "write managed = false"),
];
const MEMBER_HINTS: &[(&str, &str)] = &[
    (
        "type",
        "did you mean `agent`? agent = \"ocf:heartbeat:Filesystem\"",
    ),
    (
        "class",
        "did you mean `agent`? agent = \"ocf:heartbeat:Filesystem\"",
    ),
    (
        "ra",
        "did you mean `agent`? agent = \"ocf:heartbeat:Filesystem\"",
    ),
    ("instance_attributes", "did you mean `params`?"),
    ("parameters", "did you mean `params`?"),
    ("on-fail", "did you mean `on_fail`?"),
    (
        "op",
        "write monitor = { interval = \"10s\", timeout = \"20s\" }, start_timeout and stop_timeout",
    ),
    (
        "timeout",
        "write start_timeout, stop_timeout or monitor = { timeout = \"20s\" }",
    ),
    ("interval", "write monitor = { interval = \"10s\" }"),
];

/// Unit suffixes systemd knows; a name without one is a `.service`, as
/// `systemctl` reads it.
const UNIT_SUFFIXES: &[&str] = &[
    "service",
    "socket",
    "device",
    "mount",
    "automount",
    "swap",
    "target",
    "path",
    "timer",
    "slice",
    "scope",
];

/// A group as parsed, with the places the cross-checks point at.
struct Grp {
    spec: GroupSpec,
    name_span: Option<Span>,
    /// `resource_group[0]`
    path: String,
    /// Each member's name and where it is written.
    members: Vec<(String, Span, String)>,
    /// Its `alert` table over the global one.
    alert: halb_alert::AlertSpec,
    ok: bool,
}

/// What the caller found of one agent (see [`check_agents`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentLookup {
    /// An OCF agent, with its meta-data: the parameters are checked
    /// against it.
    Ocf(MetaData),
    /// The agent is there (an executable LSB or heartbeat script, a
    /// systemd unit name).
    Found,
    /// It cannot run: what is wrong (`agent not installed: PATH`) and how
    /// to fix it.
    Unusable { problem: String, fix: String },
}

/// Checks every member of `config` (parsed from `src`) against what
/// `lookup` finds of its agent, which is asked once per distinct agent:
/// an agent that cannot run, an unknown parameter or a missing required
/// one is an error at its place in `src`, all of them at once. Returns
/// `config` with the OCF agents' meta-data hints applied to the timeouts
/// and monitor interval a member does not write (Pacemaker's 20 s stays
/// where the agent gives none).
pub fn check_agents(
    src: &str,
    file: &Path,
    config: &Config,
    mut lookup: impl FnMut(&Agent) -> AgentLookup,
) -> Result<Config, ConfigErrors> {
    let mut cache: HashMap<Agent, AgentLookup> = HashMap::new();
    for g in &config.resource_groups {
        for m in &g.members {
            if !cache.contains_key(&m.agent) {
                let found = lookup(&m.agent);
                cache.insert(m.agent.clone(), found);
            }
        }
    }
    let mut out = config.clone();
    if cache.values().all(|l| *l == AgentLookup::Found) {
        return Ok(out);
    }
    let mut cx = Cx::new(src, file);
    let Ok(doc) = ImDocument::parse(src) else {
        return Ok(out);
    };
    let root = Node {
        tbl: Tbl::Std(doc.as_table()),
        path: String::new(),
        span: 0..0,
    };
    let Some(f) = cx.field(&root, "resource_group") else {
        return Ok(out);
    };
    let tables = cx.tables(&f, "resource_group", "name = \"web\"");
    for ((i, tbl, span), g) in tables.into_iter().zip(&mut out.resource_groups) {
        let n = Node {
            tbl,
            path: format!("resource_group[{i}]"),
            span,
        };
        let Some(mf) = cx.field(&n, "member") else {
            continue;
        };
        let members = cx.tables(&mf, "resource_group.member", "name = \"fs\"");
        for ((j, tbl, span), m) in members.into_iter().zip(&mut g.members) {
            let mn = Node {
                tbl,
                path: format!("{}.member[{j}]", n.path),
                span,
            };
            if let Some(found) = cache.get(&m.agent) {
                cx.member_agent(&mn, m, found);
            }
        }
    }
    cx.outcome(Some(out))
}

/// A table field as a node (`None`: not a table).
fn sub_node<'a>(f: &Field<'a>) -> Option<Node<'a>> {
    let tbl = match f.kind {
        Kind::Inline(t) => Tbl::Inline(t),
        Kind::Table(t) => Tbl::Std(t),
        _ => return None,
    };
    Some(Node {
        tbl,
        path: f.path.clone(),
        span: f.span.clone(),
    })
}

/// Characters of an error's `expected` before the rendering cuts it.
const TAKES_BUDGET: usize = 900;

/// "the parameters ocf:heartbeat:Dummy takes:" and one line for each,
/// the required first, with its short description; past
/// [`TAKES_BUDGET`], the names of the rest only.
fn takes(agent: &Agent, md: &MetaData) -> String {
    if md.parameters.is_empty() {
        return format!("{agent} takes no parameters");
    }
    // One a line, under the `= expected:` of the rendering.
    const NL: &str = "\n        ";
    let mut out = format!("the parameters {agent} takes:");
    let (required, optional): (Vec<_>, Vec<_>) = md.parameters.iter().partition(|p| p.required);
    let mut rest = Vec::new();
    for p in required.into_iter().chain(optional) {
        let mut line = p.name.clone();
        if p.required {
            line.push_str(" (required)");
        }
        if !p.short.is_empty() {
            line.push_str(": ");
            line.push_str(&p.short);
        }
        if rest.is_empty() && out.len() + line.len() < TAKES_BUDGET {
            out.push_str(NL);
            out.push_str(&line);
        } else {
            rest.push(p.name.as_str());
        }
    }
    if !rest.is_empty() {
        let mut more = format!("{NL}and {}", rest.join(", "));
        if out.len() + more.len() > TAKES_BUDGET + 90 {
            more = format!(
                "{NL}and {} more (the agent's meta-data has them all)",
                rest.len()
            );
        }
        out.push_str(&more);
    }
    out
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c.is_control())
}

/// A systemd unit name as `systemctl` takes it: why not, if it is not one.
fn unit_problem(unit: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c);
    if let Some(c) = unit.chars().find(|c| !allowed(*c)) {
        return Some(format!(
            "the unit {} contains {c:?}, which no unit name has",
            quote(unit)
        ));
    }
    if unit.len() > 255 {
        return Some(format!("the unit name is {} bytes long", unit.len()));
    }
    let (stem, suffix) = match unit.rsplit_once('.') {
        Some((s, x)) if UNIT_SUFFIXES.contains(&x) => (s, Some(x)),
        _ => (unit, None),
    };
    if stem.is_empty() || stem.starts_with('.') {
        return Some(format!(
            "the unit {} has no name before its suffix",
            quote(unit)
        ));
    }
    if suffix.is_none() && unit.ends_with('.') {
        return Some(format!("the unit {} ends with a dot", quote(unit)));
    }
    None
}

impl Cx<'_> {
    /// `[[resource_group]]`s, checked against the VRRP instances (valid
    /// ones) and sync groups they may follow.
    pub(super) fn resource_groups(
        &mut self,
        root: &Node,
        instances: &[&str],
        sync_groups: &[&str],
        galert: &super::alert::Layer,
    ) -> (Vec<GroupSpec>, Vec<(String, halb_alert::AlertSpec)>) {
        let Some(f) = self.field(root, "resource_group") else {
            return (Vec::new(), Vec::new());
        };
        let mut groups = Vec::new();
        for (i, tbl, span) in self.tables(&f, "resource_group", "name = \"web\"") {
            groups.push(self.resource_group(tbl, span, i, instances, sync_groups, galert));
        }
        self.resource_cross(&groups);
        let groups: Vec<Grp> = groups.into_iter().filter(|g| g.ok).collect();
        let alerts = groups
            .iter()
            .filter(|g| !g.alert.is_empty())
            .map(|g| (g.spec.name.clone(), g.alert.clone()))
            .collect();
        (groups.into_iter().map(|g| g.spec).collect(), alerts)
    }

    fn resource_cross(&mut self, groups: &[Grp]) {
        let mut names: HashMap<&str, usize> = HashMap::new();
        for g in groups {
            let Some(span) = &g.name_span else { continue };
            match names.get(g.spec.name.as_str()) {
                Some(&line) => self.push(
                    Problem::new(
                        span.clone(),
                        format!("{}.name", g.path),
                        format!("duplicate resource_group name {}", quote(&g.spec.name)),
                    )
                    .expected("a name no other resource_group has")
                    .fix(format!("rename one of them (the other is at line {line})")),
                ),
                None => {
                    names.insert(&g.spec.name, self.line(span));
                }
            }
        }
        let mut members: HashMap<&str, (usize, &str)> = HashMap::new();
        for g in groups {
            for (name, span, path) in &g.members {
                match members.get(name.as_str()) {
                    Some(&(line, group)) => self.push(
                        Problem::new(
                            span.clone(),
                            path.clone(),
                            format!(
                                "member name {} is already used in resource_group {} (line {line})",
                                quote(name),
                                quote(group)
                            ),
                        )
                        .expected(
                            "a member name unique across all groups (agents get it as \
                             OCF_RESOURCE_INSTANCE and name their state files after it)",
                        )
                        .fix("rename one of them"),
                    ),
                    None => {
                        members.insert(name, (self.line(span), &g.spec.name));
                    }
                }
            }
        }
    }

    fn rg_name(&mut self, n: &Node, what: &str, example: &str) -> (Option<String>, Option<Span>) {
        let Some(f) = self.field(n, "name") else {
            self.push(
                Problem::new(
                    n.span.clone(),
                    n.path.clone(),
                    format!("{what} without `name`"),
                )
                .expected(format!("name = {example}: a unique name"))
                .fix(format!("add name = {example}")),
            );
            return (None, None);
        };
        let Some(s) = self.vrrp_str(&f, "a unique name", example) else {
            return (None, Some(f.span.clone()));
        };
        if !valid_name(s) {
            self.push(
                Problem::new(
                    f.span.clone(),
                    f.path.clone(),
                    format!("{what} name {} is empty, a path or has spaces", quote(s)),
                )
                .expected("a name without spaces or '/' (it names state files)")
                .fix(format!("write name = {example}")),
            );
            return (None, Some(f.span.clone()));
        }
        (Some(s.to_owned()), Some(f.span.clone()))
    }

    fn resource_group(
        &mut self,
        tbl: Tbl,
        span: Span,
        i: usize,
        instances: &[&str],
        sync_groups: &[&str],
        galert: &super::alert::Layer,
    ) -> Grp {
        let n = Node {
            tbl,
            path: format!("resource_group[{i}]"),
            span: span.clone(),
        };
        let before = self.errors.len();
        self.vrrp_keys(&n, GROUP_KEYS, "a resource_group key", GROUP_HINTS);
        let (name, name_span) = self.rg_name(&n, "resource_group", "\"web\"");
        let follows = self.follows(&n, instances, sync_groups);
        let mut spec = GroupSpec::new(
            name.clone().unwrap_or_default(),
            follows.unwrap_or(Follows::Instance(String::new())),
            Vec::new(),
        );
        if let Some(f) = self.field(&n, "migration_threshold") {
            if let Some(v) = self.small_int(
                &f,
                (0, i64::from(u32::MAX)),
                "a fail count 0.. (0: never move the group away; default 0)",
                "3",
                "write a count such as 3, or 0 to never move the group away",
            ) {
                spec.migration_threshold = u32::try_from(v).unwrap_or(u32::MAX);
            }
        }
        if let Some(f) = self.field(&n, "failure_timeout") {
            spec.failure_timeout = self.duration(
                &f,
                Duration::from_secs(1),
                "write failure_timeout = \"60s\", or leave it out: fail counts then last until cleanup",
            );
        }
        spec.start_failure_is_fatal = self.vrrp_bool(&n, "start_failure_is_fatal", true);
        spec.managed = self.vrrp_bool(&n, "managed", true);
        // Resource events go to the group's `alert` table over [global.alert].
        let galert_own = match self.field(&n, "alert") {
            Some(f) => self.alert_table(&f),
            None => super::alert::Layer::default(),
        };
        let alert = self.resolve_alert(galert, &galert_own);
        let (mut members, mut names) = (Vec::new(), Vec::new());
        let member = self.field(&n, "member");
        let mut tables = Vec::new();
        if let Some(f) = &member {
            tables = self.tables(f, "resource_group.member", "name = \"fs\"");
        }
        let empty = matches!(member.as_ref().map(|f| f.kind), Some(Kind::Array(a)) if a.is_empty());
        for (j, tbl, mspan) in tables {
            let path = format!("{}.member[{j}]", n.path);
            let (m, named) = self.member(tbl, mspan, path);
            members.extend(m);
            names.extend(named);
        }
        match member {
            Some(_) if !empty => {}
            _ => self.push(
                Problem::new(
                    span.clone(),
                    n.path.clone(),
                    "resource_group without members",
                )
                .expected("at least one [[resource_group.member]], started in file order")
                .fix(
                    "add a member below the group: [[resource_group.member]] with name = \"fs\" \
                     and agent = \"ocf:heartbeat:Filesystem\"",
                ),
            ),
        }
        let ok = self.errors.len() == before && name.is_some();
        spec.members = members;
        Grp {
            spec,
            name_span,
            path: n.path.clone(),
            members: names,
            alert,
            ok,
        }
    }

    fn follows(&mut self, n: &Node, instances: &[&str], sync_groups: &[&str]) -> Option<Follows> {
        const EXPECTED: &str =
            "the name of a [[vrrp_instance]] or a [[vrrp_sync_group]] in this file";
        let Some(f) = self.field(n, "follows") else {
            let fix = match instances.first().or(sync_groups.first()) {
                Some(x) => format!("add follows = {}", quote(x)),
                None => "define a [[vrrp_instance]] and add follows = \"VI_1\"".to_owned(),
            };
            self.push(
                Problem::new(
                    n.span.clone(),
                    n.path.clone(),
                    "resource_group without `follows`",
                )
                .expected(format!(
                    "follows = \"VI_1\": {EXPECTED} (the group runs where it is master)"
                ))
                .fix(fix),
            );
            return None;
        };
        let s = self.vrrp_str(&f, EXPECTED, "\"VI_1\"")?;
        let (inst, group) = (instances.contains(&s), sync_groups.contains(&s));
        let problem = match (inst, group) {
            (true, false) => return Some(Follows::Instance(s.to_owned())),
            (false, true) => return Some(Follows::SyncGroup(s.to_owned())),
            (true, true) => (
                format!(
                    "{} names both a vrrp_instance and a vrrp_sync_group",
                    quote(s)
                ),
                "rename the sync group or the instance, so that follows names one of them"
                    .to_owned(),
            ),
            (false, false) => {
                let all: Vec<&str> = instances.iter().chain(sync_groups).copied().collect();
                let list = |names: &[&str]| {
                    names
                        .iter()
                        .map(|n| quote(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let mut fix = match closest(s, &all) {
                    Some(c) => format!("did you mean {}? ", quote(c)),
                    None => String::new(),
                };
                if all.is_empty() {
                    fix.push_str("define the [[vrrp_instance]] (with name = …) the group follows");
                } else {
                    if !instances.is_empty() {
                        fix.push_str(&format!("instances: {}", list(instances)));
                    }
                    if !sync_groups.is_empty() {
                        if !instances.is_empty() {
                            fix.push_str("; ");
                        }
                        fix.push_str(&format!("sync groups: {}", list(sync_groups)));
                    }
                }
                (
                    format!(
                        "no valid [[vrrp_instance]] or [[vrrp_sync_group]] named {}",
                        quote(s)
                    ),
                    fix,
                )
            }
        };
        self.push(
            Problem::new(f.span.clone(), f.path.clone(), problem.0)
                .expected(EXPECTED)
                .fix(problem.1),
        );
        None
    }

    /// One member: its spec (if valid), and its name with where it is
    /// written and the path of its name (if it has one).
    fn member(
        &mut self,
        tbl: Tbl,
        span: Span,
        path: String,
    ) -> (Option<MemberSpec>, Option<(String, Span, String)>) {
        let n = Node {
            tbl,
            path,
            span: span.clone(),
        };
        let before = self.errors.len();
        self.vrrp_keys(&n, MEMBER_KEYS, "a resource_group.member key", MEMBER_HINTS);
        let (name, name_span) = self.rg_name(&n, "member", "\"fs\"");
        let agent = match self.field(&n, "agent") {
            Some(f) => self.agent(&f),
            None => {
                self.push(
                    Problem::new(span.clone(), n.path.clone(), "member without `agent`")
                        .expected(
                            "agent = \"ocf:PROVIDER:TYPE\", \"lsb:NAME\", \
                             \"heartbeat:NAME::ARG\" or \"systemd:UNIT\"",
                        )
                        .fix("add agent = \"ocf:heartbeat:Filesystem\" (for example)"),
                );
                None
            }
        };
        let mut m = MemberSpec::new(
            name.clone().unwrap_or_default(),
            agent.clone().unwrap_or(Agent::Lsb(String::new())),
        );
        if let Some(f) = self.field(&n, "params") {
            m.params = self.params(&f, agent.as_ref());
        }
        if let Some(f) = self.field(&n, "monitor") {
            m.monitor = self.monitor(&f);
        }
        for (key, slot) in [
            ("start_timeout", &mut m.start_timeout),
            ("stop_timeout", &mut m.stop_timeout),
        ] {
            if let Some(f) = self.field(&n, key) {
                let fix = format!("write {key} = \"60s\" (the default is 20s)");
                if let Some(d) = self.duration(&f, Duration::from_secs(1), &fix) {
                    *slot = d;
                }
            }
        }
        if let Some(f) = self.field(&n, "on_fail") {
            if let Some(o) = self.on_fail(&f, &OnFail::ALL, "standby") {
                m.on_fail = o;
            }
        }
        if let Some(f) = self.field(&n, "start_on_fail") {
            m.start_on_fail = self.on_fail(&f, &OnFail::START, "move");
        }
        if let Some(f) = self.field(&n, "stop_on_fail") {
            self.stop_on_fail(&f);
        }
        let ok = self.errors.len() == before;
        let named = match (name, name_span) {
            (Some(name), Some(s)) => Some((name, s, format!("{}.name", n.path))),
            _ => None,
        };
        (ok.then_some(m), named)
    }

    /// `on_fail` (the monitor's) or `start_on_fail`: one of `allowed`;
    /// Pacemaker's `fence` is refused with what to write instead.
    fn on_fail(&mut self, f: &Field, allowed: &[OnFail], instead: &str) -> Option<OnFail> {
        if matches!(f.kind, Kind::Str("fence")) {
            self.push(
                Problem::new(
                    f.span.clone(),
                    f.path.clone(),
                    format!("{} = \"fence\": halb does not fence (yet)", f.name),
                )
                .expected(format!(
                    "one of {}",
                    allowed
                        .iter()
                        .map(|o| o.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .fix(format!(
                    "write {} = \"{instead}\": the group leaves this director and the peer takes it",
                    f.name
                )),
            );
            return None;
        }
        let choices: Vec<&'static str> = allowed.iter().map(|o| o.as_str()).collect();
        let synonyms = [
            ("restart-container", "restart"),
            ("demote", "stop"),
            ("migrate", "move"),
            ("ban", "move"),
        ];
        let what = f.name.to_owned();
        let c = self.choice(f, &what, &choices, &synonyms)?;
        OnFail::parse(c)
    }

    /// `stop_on_fail`: only `block`. A stop that failed may have left the
    /// member running; starting it elsewhere could run it twice (a file
    /// system mounted on two directors), so halb blocks the group here,
    /// alerts, and keeps the VIP (fencing, which would let the peer start
    /// it, is not in halb yet).
    fn stop_on_fail(&mut self, f: &Field) {
        if matches!(f.kind, Kind::Str("block")) {
            return;
        }
        let found = match f.kind {
            Kind::Str(s) => quote(s),
            _ => self.raw(&f.span).to_owned(),
        };
        self.push(
            Problem::new(
                f.span.clone(),
                f.path.clone(),
                format!("stop_on_fail = {found}: a failed stop can only block"),
            )
            .expected(
                "\"block\" (the default): a member whose stop failed may still run, so nothing \
                 is started or stopped for the group here and it is never started elsewhere \
                 (no fencing yet); an alert goes out",
            )
            .fix("write stop_on_fail = \"block\", or leave it out"),
        );
    }

    fn agent(&mut self, f: &Field) -> Option<Agent> {
        const EXPECTED: &str =
            "\"ocf:PROVIDER:TYPE\", \"lsb:NAME\", \"heartbeat:NAME::ARG::ARG\" or \"systemd:UNIT\"";
        let s = self.vrrp_str(f, EXPECTED, "\"ocf:heartbeat:Filesystem\"")?;
        let problem = match Agent::parse(s) {
            Ok(Agent::Systemd(u)) => match unit_problem(&u) {
                None => return Some(Agent::Systemd(u)),
                Some(p) => (
                    p,
                    "give the unit as systemctl shows it, e.g. \"systemd:nginx.service\" \
                     (a name without a suffix is a .service)"
                        .to_owned(),
                ),
            },
            Ok(a) => return Some(a),
            Err(e) => (e.problem, e.fix),
        };
        self.push(
            Problem::new(f.span.clone(), f.path.clone(), problem.0)
                .expected(EXPECTED)
                .fix(problem.1),
        );
        None
    }

    /// `params = { … }`: strings, integers and booleans (as strings).
    fn params(&mut self, f: &Field, agent: Option<&Agent>) -> Vec<(String, String)> {
        let w = Want {
            short: "a table",
            expected: "a table of the agent's parameters: params = { device = \"/dev/sdb1\" }",
            example: "{ device = \"/dev/sdb1\" }",
        };
        let Some(n) = self.table(f, &w, None) else {
            return Vec::new();
        };
        match agent {
            Some(Agent::Ocf { .. }) | None => {}
            Some(a) => {
                let fix = match a {
                    Agent::Heartbeat { name, .. } => format!(
                        "heartbeat scripts take arguments in the agent string, as in \
                         haresources: agent = \"heartbeat:{name}::ARG1::ARG2\"; remove params"
                    ),
                    _ => "remove params: only OCF agents take parameters".to_owned(),
                };
                self.push(
                    Problem::new(
                        f.key_span.clone(),
                        f.path.clone(),
                        format!("{} agents take no params", a.class()),
                    )
                    .expected("params only with an ocf: agent")
                    .fix(fix),
                );
                return Vec::new();
            }
        }
        let mut out = Vec::new();
        for key in n.tbl.names() {
            let Some(p) = self.field(&n, key) else {
                continue;
            };
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.push(
                    Problem::new(
                        p.key_span.clone(),
                        p.path.clone(),
                        format!("{} is not a parameter name", quote(key)),
                    )
                    .expected("letters, digits and '_' (it becomes OCF_RESKEY_<name>)")
                    .fix("use the name the agent's meta-data gives"),
                );
                continue;
            }
            let value = match p.kind {
                Kind::Str(s) if s.contains('\0') => {
                    self.push(
                        Problem::new(
                            p.span.clone(),
                            p.path.clone(),
                            "NUL character in a parameter",
                        )
                        .expected("a string without NUL (it goes into the environment)")
                        .fix("remove the \\u0000"),
                    );
                    continue;
                }
                Kind::Str(s) => s.to_owned(),
                Kind::Int(i) => i.to_string(),
                Kind::Bool(b) => b.to_string(),
                _ => {
                    let w = Want {
                        short: "a parameter value",
                        expected: "a string, an integer or a boolean (OCF parameters are strings)",
                        example: "\"value\"",
                    };
                    let fix = match p.kind {
                        Kind::Float(_) => Some(format!(
                            "quote it: {key} = \"{}\"",
                            self.raw(&p.span).trim()
                        )),
                        Kind::Array(_) => Some(format!(
                            "give one string; for a list, write it as the agent reads it, e.g. {key} = \"a b c\""
                        )),
                        _ => None,
                    };
                    self.type_error(&p, &w, fix);
                    continue;
                }
            };
            out.push((key.to_owned(), value));
        }
        out
    }

    fn monitor(&mut self, f: &Field) -> OpSpec {
        let mut op = OpSpec::default();
        let w = Want {
            short: "a table",
            expected: "monitor = { interval = \"10s\", timeout = \"20s\" }",
            example: "{ interval = \"10s\", timeout = \"20s\" }",
        };
        let Some(n) = self.table(f, &w, None) else {
            return op;
        };
        self.vrrp_keys(&n, MONITOR_KEYS, "a monitor key", &[]);
        if let Some(x) = self.field(&n, "interval") {
            if let Some(d) = self.duration(&x, Duration::ZERO, "") {
                op.interval = d;
            }
        }
        if let Some(x) = self.field(&n, "timeout") {
            if let Some(d) = self.duration(
                &x,
                Duration::from_secs(1),
                "write timeout = \"20s\" (Pacemaker's default); an agent's monitor needs at least 1s",
            ) {
                op.timeout = d;
            }
        }
        op
    }

    /// A member against what was found of its agent.
    fn member_agent(&mut self, n: &Node, m: &mut MemberSpec, found: &AgentLookup) {
        let agent_span = self
            .field(n, "agent")
            .map_or_else(|| n.span.clone(), |f| f.span.clone());
        let agent_path = format!("{}.agent", n.path);
        let md = match found {
            AgentLookup::Found => return,
            AgentLookup::Unusable { problem, fix } => {
                self.push(
                    Problem::new(agent_span, agent_path, problem.clone())
                        .expected(format!("an agent installed on this director ({})", m.agent))
                        .fix(fix.clone()),
                );
                return;
            }
            AgentLookup::Ocf(md) => md,
        };
        self.agent_defaults(n, m, md);
        let takes = || takes(&m.agent, md);
        let params = self.field(n, "params");
        let pnode = params.as_ref().and_then(sub_node);
        let names: Vec<&str> = md.parameters.iter().map(|p| p.name.as_str()).collect();
        if let Some(pn) = &pnode {
            for key in pn.tbl.names() {
                if names.contains(&key) {
                    continue;
                }
                let Some(p) = self.field(pn, key) else {
                    continue;
                };
                let fix = match closest(key, &names) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!("remove `{key}`"),
                };
                self.push(
                    Problem::new(
                        p.key_span.clone(),
                        p.path.clone(),
                        format!("{} has no parameter `{key}`", m.agent),
                    )
                    .expected(takes())
                    .fix(fix),
                );
            }
        }
        let missing: Vec<&str> = md
            .parameters
            .iter()
            .filter(|p| p.required && !m.params.iter().any(|(k, _)| *k == p.name))
            .map(|p| p.name.as_str())
            .collect();
        if !missing.is_empty() {
            let (span, path) = match &params {
                Some(f) => (f.key_span.clone(), f.path.clone()),
                None => (agent_span, agent_path),
            };
            let list = missing.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>();
            let example = missing
                .iter()
                .map(|p| format!("{p} = \"…\""))
                .collect::<Vec<_>>()
                .join(", ");
            let fix = if params.is_some() {
                format!("add {example} to params")
            } else {
                format!("add params = {{ {example} }}")
            };
            self.push(
                Problem::new(
                    span,
                    path,
                    format!(
                        "{} requires the parameter{} {}",
                        m.agent,
                        if missing.len() > 1 { "s" } else { "" },
                        list.join(", ")
                    ),
                )
                .expected(takes())
                .fix(fix),
            );
        }
    }

    /// The meta-data's hints for what `n` does not write: start and stop
    /// timeouts, the monitor's interval and timeout (at least 1 s).
    fn agent_defaults(&self, n: &Node, m: &mut MemberSpec, md: &MetaData) {
        let at_least = |d: Duration| d.max(Duration::from_secs(1));
        if self.field(n, "start_timeout").is_none() {
            if let Some(d) = md.timeout("start") {
                m.start_timeout = at_least(d);
            }
        }
        if self.field(n, "stop_timeout").is_none() {
            if let Some(d) = md.timeout("stop") {
                m.stop_timeout = at_least(d);
            }
        }
        let monitor = self.field(n, "monitor");
        let mn = monitor.as_ref().and_then(sub_node);
        let written = |k: &str| mn.as_ref().is_some_and(|mn| self.field(mn, k).is_some());
        if !written("interval") {
            if let Some(d) = md.monitor_interval() {
                m.monitor.interval = d;
            }
        }
        if !written("timeout") {
            if let Some(d) = md.timeout("monitor") {
                m.monitor.timeout = at_least(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{takes, unit_problem};
    use halb_resource::{Agent, MetaData, Parameter};

    #[test]
    fn the_parameters_an_agent_takes_fit_before_the_cut() {
        let agent = Agent::parse("ocf:heartbeat:Big").unwrap_or(Agent::Lsb("x".into()));
        let param = |i: usize, required: bool| Parameter {
            name: format!("param_{i}"),
            required,
            short: "a parameter with a description of some length".into(),
            ..Parameter::default()
        };
        for n in [3, 30, 300] {
            let md = MetaData {
                parameters: (0..n).map(|i| param(i, i == n - 1)).collect(),
                ..MetaData::default()
            };
            let t = takes(&agent, &md);
            assert!(t.chars().count() < 1000, "{n}: {t}");
            // The required one first, with its description.
            let first = t.lines().nth(1).unwrap_or_default();
            assert!(
                first.contains(&format!("param_{} (required): a parameter", n - 1)),
                "{t}"
            );
            assert_eq!(t.contains("and "), n > 3, "{t}");
        }
        assert!(takes(&agent, &MetaData::default()).contains("takes no parameters"));
    }

    #[test]
    fn unit_names_as_systemctl_takes_them() {
        for ok in [
            "nginx",
            "nginx.service",
            "getty@tty1.service",
            "mnt-shared.mount",
            "a:b-c_d.socket",
            "php8.2-fpm",
        ] {
            assert_eq!(unit_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("nginx!", "contains '!'"),
            ("ngïnx", "contains 'ï'"),
            (".service", "no name before its suffix"),
            ("nginx.", "ends with a dot"),
        ] {
            let p = unit_problem(bad).unwrap_or_default();
            assert!(p.contains(why), "{bad}: {p}");
        }
        assert!(unit_problem(&"a".repeat(256)).is_some());
    }
}
