//! keepalived.conf (keepalived 2.2, Debian 12): the text is expanded line
//! by line (`include` globs, `@ID` conditional lines, `$NAME=value`
//! definitions and their uses), split into tokens (`#` and `!` start
//! comments, `"…"` quotes, `{` and `}` stand alone), built into a tree of
//! blocks, and each block mapped to halb's items. Every keyword is either
//! mapped or reported.

use crate::emit::{self, Emitter};
use crate::report::{Advice, Pos, Report};
use crate::{resolve_relative, Input, Options, Source};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use toml_edit::{Table, Value};

/// Most nested includes (keepalived's own limit is lower).
const MAX_INCLUDE_DEPTH: usize = 16;
/// Most lines after expansion (a bound on include loops and huge globs).
const MAX_LINES: usize = 2_000_000;
/// Most nested blocks.
const MAX_DEPTH: usize = 32;
/// Most addresses one range (`10.0.0.1-200`) expands to.
const MAX_RANGE: u32 = 256;

// ---------------------------------------------------------------- lexing

#[derive(Debug, Clone)]
struct Line {
    file: String,
    no: usize,
    text: String,
}

#[derive(Debug, Clone)]
struct Tok {
    text: String,
    pos: Pos,
}

#[derive(Debug, Clone)]
struct Node {
    key: Tok,
    args: Vec<Tok>,
    block: Option<Vec<Node>>,
}

impl Node {
    fn pos(&self) -> &Pos {
        &self.key.pos
    }
    fn k(&self) -> &str {
        &self.key.text
    }
    fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(|t| t.text.as_str())
    }
    fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }
    /// The arguments and, for `key { a b }`, the block's words: keepalived
    /// accepts both spellings for lists.
    fn words(&self) -> Vec<&Tok> {
        let mut v: Vec<&Tok> = self.args.iter().collect();
        for c in self.children() {
            v.push(&c.key);
            v.extend(c.args.iter());
        }
        v
    }
}

struct Expander<'a> {
    source: &'a dyn Source,
    opts: &'a Options,
    vars: BTreeMap<String, String>,
    noted_ids: BTreeSet<String>,
    lines: Vec<Line>,
}

impl Expander<'_> {
    fn expand(&mut self, file: &str, text: &str, depth: usize, report: &mut Report) {
        let mut pending: Option<(String, String, usize)> = None; // multi-line $NAME=
        for (i, raw) in text.lines().enumerate() {
            if self.lines.len() >= MAX_LINES {
                report.error(
                    &Pos::new(file, i + 1, 1),
                    "include",
                    format!("more than {MAX_LINES} lines after includes"),
                    Advice::Fix("check the include patterns for a loop".to_owned()),
                );
                return;
            }
            let no = i + 1;
            let raw = raw.trim_end_matches('\r');
            if let Some((name, mut val, start)) = pending.take() {
                let (part, more) = match raw.strip_suffix('\\') {
                    Some(p) => (p, true),
                    None => (raw, false),
                };
                val.push('\n');
                val.push_str(part.trim());
                if more {
                    pending = Some((name, val, start));
                } else {
                    self.vars.insert(name, val);
                }
                continue;
            }
            let mut line = raw.trim_start().to_owned();
            let lead = raw.len() - line.len();
            // @ID / @^ID conditional lines.
            if let Some(rest) = line.strip_prefix('@') {
                let (id, body) =
                    rest.split_at(rest.find(char::is_whitespace).unwrap_or(rest.len()));
                let (neg, id) = match id.strip_prefix('^') {
                    Some(id) => (true, id),
                    None => (false, id),
                };
                let applies = match &self.opts.config_id {
                    Some(mine) => (mine == id) != neg,
                    None => {
                        if self.noted_ids.insert(id.to_owned()) {
                            report.note(
                                &Pos::new(file, no, lead + 1),
                                &format!("@{id}"),
                                format!(
                                    "lines for keepalived's config id {id:?} (keepalived -i {id}) were \
                                     {}",
                                    if neg { "kept (for any other id)" } else { "left out" }
                                ),
                                Advice::Fix(format!(
                                    "import with --config-id {id} to take the lines for that director"
                                )),
                            );
                        }
                        neg
                    }
                };
                if !applies {
                    continue;
                }
                line = body.trim_start().to_owned();
            }
            // $NAME=value definitions.
            if let Some(def) = line.strip_prefix('$') {
                if let Some(eq) = def.find('=') {
                    let name = def[..eq].trim();
                    if !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                        let val = def[eq + 1..].trim();
                        match val.strip_suffix('\\') {
                            Some(v) => pending = Some((name.to_owned(), v.trim().to_owned(), no)),
                            None => {
                                self.vars.insert(name.to_owned(), val.to_owned());
                            }
                        }
                        continue;
                    }
                }
            }
            if line.contains('$') {
                line = self.substitute(&line);
            }
            if line.starts_with("~SEQ") {
                report.unmapped(
                    &Pos::new(file, no, lead + 1),
                    "~SEQ",
                    "keepalived's sequence expansion of a line",
                    Advice::Fix("write the lines it would make out by hand".to_owned()),
                );
                continue;
            }
            let first = line.split_whitespace().next().unwrap_or("");
            if first == "include" {
                let pat = line["include".len()..].trim();
                let pat = pat.trim_matches('"');
                let pos = Pos::new(file, no, lead + 1);
                if pat.is_empty() {
                    report.error(
                        &pos,
                        "include",
                        "include without a file",
                        Advice::Fix(
                            "give a path or a glob: include /etc/keepalived/conf.d/*.conf".into(),
                        ),
                    );
                    continue;
                }
                if depth >= MAX_INCLUDE_DEPTH {
                    report.error(
                        &pos,
                        "include",
                        format!("includes nested deeper than {MAX_INCLUDE_DEPTH}"),
                        Advice::Fix("an include loop? check what includes what".into()),
                    );
                    continue;
                }
                let path = resolve_relative(file, pat);
                let files = if pat.contains(['*', '?', '[']) {
                    match self.source.glob(&path) {
                        Ok(f) => f,
                        Err(e) => {
                            report.error(
                                &pos,
                                "include",
                                format!("cannot expand {path:?}: {e}"),
                                Advice::None,
                            );
                            continue;
                        }
                    }
                } else {
                    vec![path.clone()]
                };
                if files.is_empty() {
                    report.note(
                        &pos,
                        "include",
                        format!("{path:?} matches no file (keepalived includes nothing either)"),
                        Advice::None,
                    );
                }
                for f in files {
                    match self.source.read(&f) {
                        Ok(t) => self.expand(&f, &t, depth + 1, report),
                        Err(e) => report.error(
                            &pos,
                            "include",
                            format!("cannot read {f:?}: {e}"),
                            Advice::Fix("check the path (relative paths start at the including file's directory)".into()),
                        ),
                    }
                }
                continue;
            }
            // A line made of one $NAME whose value has several lines.
            for (k, part) in line.split('\n').enumerate() {
                let pad = if k == 0 { lead } else { 0 };
                self.lines.push(Line {
                    file: file.to_owned(),
                    no,
                    text: format!("{}{}", " ".repeat(pad), part),
                });
            }
        }
        if let Some((name, val, _)) = pending {
            self.vars.insert(name, val);
        }
    }

    fn substitute(&self, line: &str) -> String {
        let mut out = String::new();
        let mut rest = line;
        let mut guard = 0;
        while let Some(i) = rest.find('$') {
            guard += 1;
            if guard > 1000 {
                break;
            }
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (name, used) = if let Some(b) = after.strip_prefix('{') {
                match b.find('}') {
                    Some(e) => (&b[..e], e + 2),
                    None => ("", 0),
                }
            } else {
                let e = after
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..e], e)
            };
            match self.vars.get(name) {
                Some(v) if !name.is_empty() => {
                    out.push_str(v);
                    rest = &after[used..];
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Split lines into tokens; `None` marks a line end.
fn tokens(lines: &[Line]) -> Vec<Option<Tok>> {
    let mut out = Vec::new();
    for l in lines {
        let chars: Vec<char> = l.text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            if c == '#' || c == '!' {
                break;
            }
            let pos = Pos::new(&l.file, l.no, i + 1);
            if c == '{' || c == '}' {
                out.push(Some(Tok {
                    text: c.to_string(),
                    pos,
                }));
                i += 1;
                continue;
            }
            let mut text = String::new();
            if c == '"' {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    text.push(chars[i]);
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '{' | '}' | '"')
                {
                    text.push(chars[i]);
                    i += 1;
                }
            }
            out.push(Some(Tok { text, pos }));
        }
        out.push(None);
    }
    out
}

struct TreeParser {
    toks: Vec<Option<Tok>>,
    i: usize,
}

impl TreeParser {
    fn skip_newlines(&mut self) {
        while self.i < self.toks.len() && self.toks[self.i].is_none() {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).and_then(|t| t.as_ref())
    }

    /// Statements until `}` (consumed; true) or the end (false).
    fn block(&mut self, depth: usize, report: &mut Report) -> (Vec<Node>, bool) {
        let mut nodes = Vec::new();
        loop {
            self.skip_newlines();
            let Some(t) = self.peek().cloned() else {
                return (nodes, false);
            };
            self.i += 1;
            if t.text == "}" {
                if depth == 0 {
                    report.error(
                        &t.pos,
                        "}",
                        "`}` closes no block",
                        Advice::Fix("remove it, or add the block's opening line".into()),
                    );
                    continue;
                }
                return (nodes, true);
            }
            if t.text == "{" {
                report.error(
                    &t.pos,
                    "{",
                    "a block without a keyword",
                    Advice::Fix("put the keyword before `{` (vrrp_instance VI_1 {)".into()),
                );
                let _ = self.sub(&t, depth, report);
                continue;
            }
            let mut args = Vec::new();
            let mut block = None;
            loop {
                match self.toks.get(self.i) {
                    None => break,
                    Some(None) => {
                        // `keyword` then `{` on the next line.
                        let mut j = self.i;
                        while j < self.toks.len() && self.toks[j].is_none() {
                            j += 1;
                        }
                        if self
                            .toks
                            .get(j)
                            .and_then(|t| t.as_ref())
                            .is_some_and(|t| t.text == "{")
                        {
                            self.i = j;
                            continue;
                        }
                        break;
                    }
                    Some(Some(x)) if x.text == "{" => {
                        let open = x.clone();
                        self.i += 1;
                        block = Some(self.sub(&open, depth, report));
                        break;
                    }
                    Some(Some(x)) if x.text == "}" => break,
                    Some(Some(x)) => {
                        args.push(x.clone());
                        self.i += 1;
                    }
                }
            }
            nodes.push(Node {
                key: t,
                args,
                block,
            });
        }
    }

    fn sub(&mut self, open: &Tok, depth: usize, report: &mut Report) -> Vec<Node> {
        if depth + 1 > MAX_DEPTH {
            report.error(
                &open.pos,
                "{",
                format!("blocks nested deeper than {MAX_DEPTH}"),
                Advice::None,
            );
            // Skip to the end: nothing after this can be trusted.
            self.i = self.toks.len();
            return Vec::new();
        }
        let (nodes, closed) = self.block(depth + 1, report);
        if !closed {
            report.error(
                &open.pos,
                "{",
                "this `{` is never closed",
                Advice::Fix("add the missing `}`".into()),
            );
        }
        nodes
    }
}

// --------------------------------------------------------------- mapping

#[derive(Debug, Clone, Default)]
struct Script {
    command: Option<String>,
    interval: Option<u64>,
    timeout: Option<u64>,
    rise: Option<i64>,
    fall: Option<i64>,
    weight: i64,
}

#[derive(Debug, Clone)]
struct GlobalVrrp {
    version: Option<i64>,
    strict: bool,
    garp_delay: u64,
    garp_count: i64,
    garp_refresh: u64,
    garp_interval: u64,
}

struct Mapper<'r> {
    report: &'r mut Report,
    scripts: BTreeMap<String, Script>,
    vsgroups: BTreeMap<String, Vec<(String, Pos)>>, // name -> endpoints "ip:port" or "fwmark N"
    vrrp: GlobalVrrp,
    instances: BTreeSet<String>,
    sync_daemon_done: bool,
    pending_groups: Vec<(Table, Vec<(String, Pos)>)>,
    /// The instance whose VRID becomes the sync daemon's id (keepalived's
    /// default when `id` is not given).
    sync_id_from: Option<String>,
}

fn join_path(ctx: &str, key: &str) -> String {
    if ctx.is_empty() {
        key.to_owned()
    } else {
        format!("{ctx}.{key}")
    }
}

/// keepalived's seconds (`3`, `0.5`) in milliseconds.
fn secs_ms(s: &str) -> Option<u64> {
    let v: f64 = s.parse().ok()?;
    if !(0.0..=1e9).contains(&v) || !v.is_finite() {
        return None;
    }
    Some((v * 1000.0).round() as u64)
}

fn dur(ms: u64) -> String {
    emit::duration_ms(ms)
}

fn sockaddr(ip: &str, port: &str) -> Option<String> {
    let ip: IpAddr = ip.parse().ok()?;
    let port: u16 = port.parse().ok()?;
    Some(std::net::SocketAddr::new(ip, port).to_string())
}

/// What each known but unmapped keyword does, and the advice.
fn known_unmapped(key: &str) -> Option<(&'static str, Advice)> {
    let ns = Advice::NotSupported;
    let f = |s: &str| Advice::Feature(s.to_owned());
    Some(match key {
        "router_id" => ("names this director in keepalived's mails and logs", f("alerts name the director by its host name")),
        "lvs_id" => ("the old name of router_id", f("alerts name the director by its host name")),
        "smtp_helo_name" => ("the name sent in SMTP HELO", ns),
        "smtp_alert" | "smtp_alert_vrrp" | "smtp_alert_checker" => ("which events are mailed", f("halb mails the real server changes of every service when [global.alert] has email; VRRP changes go to notify scripts")),
        "script_user" => ("the user scripts run as", f("scripts run as halb's own user; run halb as that user, or use sudo in the script")),
        "enable_script_security" => ("refuses scripts writable by non-root users", ns),
        "use_vmac" | "vmac_xmit_base" => ("a virtual MAC interface (macvlan) for the instance", ns),
        "dont_track_primary" => ("ignores faults of the instance's interface", f("halb always faults an instance whose interface is down")),
        "mcast_src_ip" => ("the source address of the adverts", f("halb sends from the interface's primary address; `unicast_source` with unicast_peers")),
        "virtual_routes" | "static_routes" => ("routes added with the VIPs", ns),
        "virtual_rules" | "static_rules" => ("policy-routing rules added with the VIPs", ns),
        "static_ipaddress" => ("addresses keepalived adds at start whatever the state", ns),
        "virtual_ipaddress_excluded" => ("VIPs held by the master but not listed in the adverts", f("add them to virtual_ipaddress when every router of the VRID is halb (a keepalived peer would see other addresses in the adverts)")),
        "track_process" | "vrrp_track_process" => ("tracks that a process runs", f("a track_script that checks the process (pidof NAME)")),
        "track_file" | "vrrp_track_file" => ("priority from a number in a file", f("a track_script that tests the file")),
        "track_bfd" | "bfd_instance" | "BFD_CHECK" => ("BFD sessions", ns),
        "quorum" | "quorum_up" | "quorum_down" | "hysteresis" => ("the service's quorum of live weight, with scripts on crossing it", ns),
        "omega" => ("runs quorum_down when keepalived stops", ns),
        "ha_suspend" => ("checks only while VRRP is master", ns),
        "sorry_server_inhibit" => ("the sorry server kept at weight 0 while real servers are alive", ns),
        "persistence_engine" => ("a persistence engine (sip)", ns),
        "notify_up" | "notify_down" => ("a script on a real server's change", f("alerts: [global.alert] webhook (a JSON POST) or email")),
        "bindto" | "bind_port" | "bind_if" => ("the source address of the check", ns),
        "fwmark" => ("marks the check's packets", ns),
        "net_namespace" | "net_namespace_ipvs" => ("runs keepalived in a network namespace", f("run halb in the namespace (ip netns exec NAME halb run …)")),
        "garp_lower_prio_delay" | "garp_lower_prio_repeat" | "vrrp_garp_lower_prio_delay" | "vrrp_garp_lower_prio_repeat" => ("gratuitous ARPs on a lower-priority advert", ns),
        "gna_interval" | "vrrp_gna_interval" => ("the interval of IPv6 neighbour advertisements", f("garp.interval applies to both")),
        "vrrp_mcast_group4" | "vrrp_mcast_group6" => ("another multicast group for adverts", ns),
        "vrrp_iptables" | "vrrp_ipsets" | "vrrp_nftables" => ("firewall rules for VIPs (vrrp_strict / no_accept)", f("accept = false writes halb's own nftables table")),
        "debug" | "log_detail" | "log_unknown_vrids" | "vrrp_skip_check_adv_addr" | "skip_check_adv_addr" | "vrrp_check_unicast_src" | "check_unicast_src" => ("a logging or sanity-check switch of keepalived", f("halb checks and counts (halb list --json)")),
        "vrrp_priority" | "checker_priority" | "bfd_priority" | "vrrp_no_swap" | "checker_no_swap" | "vrrp_rt_priority" | "checker_rt_priority" => ("a scheduling priority of keepalived's processes", f("halb's VRRP thread runs SCHED_RR as root")),
        "max_auto_priority" => ("limits the real-time priority", ns),
        "virtualhost" => ("the Host header of HTTP checks", ns),
        "regex_no_match" | "regex_min_offset" | "regex_max_offset" | "regex_stack" | "regex_use_preload" => ("a refinement of the url's regex", f("body_regex matches anywhere in the body")),
        "tls_compliant" | "fast_recovery" => ("a detail of the HTTP checker's connection", ns),
        "lvs_flush" => ("empties the IPVS table at start", Advice::Key("global.ipvs.foreign = \"remove\" (removes what is not in the file, at start and reloads)".to_owned())),
        "lvs_flush_onstop" => ("empties the IPVS table at stop", f("halb removes its own services at stop and leaves the others")),
        "vrrp_notify_fifo" | "notify_fifo" | "notify_fifo_script" | "vrrp_notify_fifo_script" | "lvs_notify_fifo" | "lvs_notify_fifo_script" => ("state changes written to a FIFO", f("notify scripts, the control socket (halb list --json)")),
        "enable_traps" | "enable_snmp_vrrp" | "enable_snmp_checker" | "enable_snmp_rfc" | "enable_snmp_rfcv2" | "enable_snmp_rfcv3" | "snmp_socket" | "enable_dbus" => ("SNMP or D-Bus", f("the dashboard's JSON API (/api/v1/status)")),
        "vrrp_startup_delay" | "vrrp_min_garp" | "vrrp_garp_extra_if" | "vrrp_lower_prio_no_advert" | "vrrp_higher_prio_send_advert" | "lower_prio_no_advert" | "higher_prio_send_advert" | "unicast_ttl" | "unicast_fault_no_peer" | "track_src_ip" | "kernel_rx_buf_size" | "vrrp_rx_bufs_policy" | "vrrp_rx_bufs_multiplier" => ("a detail of keepalived's VRRP behaviour", ns),
        "no_email_faults" | "startup_script" | "startup_script_timeout" | "shutdown_script" | "shutdown_script_timeout" | "dynamic_interfaces" | "process_names" | "process_name" | "vrrp_process_name" | "checker_process_name" | "bfd_process_name" | "random_seed" | "default_interface" | "linkbeat_use_polling" | "linkbeat_interfaces" | "instance" | "use_pid_dir" | "child_wait_time" | "config_save_dir" | "tmp_config_directory" | "reload_check_config" | "reload_time_file" | "reload_repeat" | "reload_file" | "umask" | "uid" | "gid" | "notify_fifo_user" => ("a setting of keepalived's own processes", ns),
        "FILE_CHECK" => ("a real server's state (and weight) from a file", ns),
        _ => return None,
    })
}

impl Mapper<'_> {
    fn unmapped(&mut self, n: &Node, ctx: &str) {
        let key = join_path(ctx, n.k());
        match known_unmapped(n.k()) {
            Some((what, advice)) => self.report.unmapped(n.pos(), &key, what, advice),
            None => self.report.unmapped(
                n.pos(),
                &key,
                "not a keyword keepalived 2.2 reads here (keepalived ignores it with a warning)",
                Advice::Fix("check the spelling, or remove it".to_owned()),
            ),
        }
    }

    fn need_arg<'n>(&mut self, n: &'n Node, i: usize, ctx: &str, want: &str) -> Option<&'n str> {
        match n.arg(i) {
            Some(a) => Some(a),
            None => {
                let pos = n.args.last().map(|t| &t.pos).unwrap_or(n.pos()).clone();
                self.report.error(
                    &pos,
                    &join_path(ctx, n.k()),
                    format!("missing value: expected {want}"),
                    Advice::Fix(format!("write `{} {want}`", n.k())),
                );
                None
            }
        }
    }

    fn bad(&mut self, n: &Node, i: usize, ctx: &str, want: &str) {
        let pos = n.args.get(i).map(|t| &t.pos).unwrap_or(n.pos()).clone();
        let found = n.arg(i).unwrap_or("");
        self.report.error(
            &pos,
            &join_path(ctx, n.k()),
            format!("{found:?} is not {want}"),
            Advice::Fix(format!("write {want}")),
        );
    }

    fn int(&mut self, n: &Node, ctx: &str, lo: i64, hi: i64) -> Option<i64> {
        let want = format!("an integer {lo}..{hi}");
        let a = self.need_arg(n, 0, ctx, &want)?;
        match a.parse::<i64>() {
            Ok(v) if (lo..=hi).contains(&v) => Some(v),
            _ => {
                self.bad(n, 0, ctx, &want);
                None
            }
        }
    }

    fn secs(&mut self, n: &Node, ctx: &str) -> Option<u64> {
        let a = self.need_arg(n, 0, ctx, "a number of seconds")?;
        match secs_ms(a) {
            Some(v) => Some(v),
            None => {
                self.bad(n, 0, ctx, "a number of seconds");
                None
            }
        }
    }

    fn string(&mut self, n: &Node, ctx: &str, want: &str) -> Option<String> {
        self.need_arg(n, 0, ctx, want)?;
        Some(
            n.args
                .iter()
                .map(|t| t.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        )
    }

    // ------------------------------------------------------------ globals

    fn global_defs(&mut self, b: &Node, out: &mut Emitter) {
        let ctx = "global_defs";
        let mut alert = Table::new();
        for n in b.children() {
            match n.k() {
                "notification_email" => {
                    let emails: Vec<String> = n.words().iter().map(|t| t.text.clone()).collect();
                    if !emails.is_empty() {
                        emit::set_str_array(&mut alert, "email", &emails);
                        if emails.iter().any(|e| !e.contains('@')) {
                            self.report.note(n.pos(), &join_path(ctx, n.k()), "an address without a domain: keepalived hands it to the SMTP server as is", Advice::Fix("halb refuses addresses without @: give the full address".to_owned()));
                            let full: Vec<String> = emails
                                .iter()
                                .map(|e| {
                                    if e.contains('@') {
                                        e.clone()
                                    } else {
                                        format!("{e}@localhost")
                                    }
                                })
                                .collect();
                            emit::set_str_array(&mut alert, "email", &full);
                        }
                    }
                }
                "notification_email_from" => {
                    if let Some(s) = self.string(n, ctx, "an e-mail address") {
                        emit::set_str(&mut alert, "email_from", s);
                    }
                }
                "smtp_server" => {
                    if let Some(ip) = self.need_arg(n, 0, ctx, "an IP address [port]") {
                        let port = n.arg(1).unwrap_or("25");
                        match sockaddr(ip, port) {
                            Some(a) => emit::set_str(&mut alert, "smtp", a),
                            None => emit::set_str(&mut alert, "smtp", format!("{ip}:{port}")),
                        }
                    }
                }
                "smtp_connect_timeout" => {
                    if let Some(ms) = self.secs(n, ctx) {
                        emit::set_str(&mut alert, "smtp_timeout", dur(ms.max(1000)));
                    }
                }
                "vrrp_version" => self.vrrp.version = self.int(n, ctx, 2, 3),
                "vrrp_strict" => {
                    self.vrrp.strict = true;
                    self.report.note(n.pos(), &join_path(ctx, n.k()), "RFC conformance: no_accept on every instance, and refuses unicast and authentication", Advice::Key("accept = false (written on every instance)".to_owned()));
                }
                "vrrp_garp_master_delay" => {
                    self.vrrp.garp_delay = self.secs(n, ctx).unwrap_or(5000)
                }
                "vrrp_garp_master_repeat" => {
                    self.vrrp.garp_count = self.int(n, ctx, 0, 100).unwrap_or(5)
                }
                "vrrp_garp_master_refresh" => {
                    self.vrrp.garp_refresh = self.secs(n, ctx).unwrap_or(0)
                }
                "vrrp_garp_interval" => self.vrrp.garp_interval = self.secs(n, ctx).unwrap_or(0),
                "vrrp_garp_master_refresh_repeat" => self.refresh_repeat(n, ctx),
                "lvs_sync_daemon" => self.sync_daemon(n, ctx, None, out),
                "lvs_timeouts" => self.lvs_timeouts(n, ctx, out),
                _ => self.unmapped(n, ctx),
            }
        }
        let has_email = alert.contains_key("email");
        if !alert.is_empty() {
            if !has_email {
                self.report.note(
                    b.pos(),
                    ctx,
                    "SMTP settings without notification_email: nothing is mailed",
                    Advice::None,
                );
            } else {
                let t = out.global_table(
                    &["alert"],
                    b.pos(),
                    "global_defs notification_email, smtp_server",
                );
                for (k, v) in alert.iter() {
                    t.insert(k, v.clone());
                }
                self.report.note(
                    b.pos(),
                    "global_defs.notification_email",
                    "mails keepalived's events (of the items with smtp_alert)",
                    Advice::Feature(
                        "[global.alert] mails every real server change of every service".to_owned(),
                    ),
                );
            }
        }
    }

    /// `lvs_timeouts tcp N tcpfin N udp N` (seconds).
    fn lvs_timeouts(&mut self, n: &Node, ctx: &str, out: &mut Emitter) {
        let mut i = 0;
        while i < n.args.len() {
            let key = match n.arg(i) {
                Some("tcp") => "timeout_tcp",
                Some("tcpfin") => "timeout_tcpfin",
                Some("udp") => "timeout_udp",
                _ => {
                    self.report.error(
                        &n.args[i].pos,
                        &join_path(ctx, n.k()),
                        format!("unknown protocol {:?}", n.arg(i).unwrap_or("")),
                        Advice::Fix("tcp N, tcpfin N or udp N (seconds)".into()),
                    );
                    i += 2;
                    continue;
                }
            };
            match n.arg(i + 1).and_then(|v| v.parse::<u64>().ok()) {
                Some(v) if v > 0 => {
                    let pos = n.pos().clone();
                    emit::set_str(
                        out.global_table(&["ipvs"], &pos, "global_defs lvs_timeouts"),
                        key,
                        dur(v * 1000),
                    );
                }
                _ => {
                    let pos = n
                        .args
                        .get(i + 1)
                        .map(|t| &t.pos)
                        .unwrap_or(&n.args[i].pos)
                        .clone();
                    self.report.error(
                        &pos,
                        &join_path(ctx, n.k()),
                        "missing or bad number of seconds",
                        Advice::Fix("lvs_timeouts tcp 900 tcpfin 120 udp 300".into()),
                    );
                }
            }
            i += 2;
        }
    }

    fn refresh_repeat(&mut self, n: &Node, ctx: &str) {
        if n.arg(0) != Some("1") {
            self.report.unmapped(
                n.pos(),
                &join_path(ctx, n.k()),
                "gratuitous ARPs sent at each refresh",
                Advice::Feature("halb sends one burst of garp.count at each refresh".to_owned()),
            );
        }
    }

    fn vrrp_script(&mut self, b: &Node) {
        let Some(name) = b.arg(0).map(str::to_owned) else {
            self.report.error(
                b.pos(),
                "vrrp_script",
                "vrrp_script without a name",
                Advice::Fix("vrrp_script NAME {".into()),
            );
            return;
        };
        let ctx = format!("vrrp_script {name}");
        let mut s = Script::default();
        for n in b.children() {
            match n.k() {
                "script" => s.command = self.string(n, &ctx, "a command"),
                "interval" => s.interval = self.secs(n, &ctx),
                "timeout" => s.timeout = self.secs(n, &ctx),
                "rise" => s.rise = self.int(n, &ctx, 1, 1000),
                "fall" => s.fall = self.int(n, &ctx, 1, 1000),
                "weight" => {
                    s.weight = self.int(n, &ctx, -253, 253).unwrap_or(0);
                    if n.arg(1) == Some("reverse") {
                        self.report.unmapped(
                            n.pos(),
                            &join_path(&ctx, "weight reverse"),
                            "applies the weight while the script succeeds",
                            Advice::Feature(
                                "a positive weight is added while the script succeeds".into(),
                            ),
                        );
                    }
                }
                "user" => self.report.unmapped(
                    n.pos(),
                    &join_path(&ctx, "user"),
                    "runs the script as another user",
                    Advice::Feature("scripts run as halb's user; use sudo in the script".into()),
                ),
                "init_fail" => self.report.note(
                    n.pos(),
                    &join_path(&ctx, "init_fail"),
                    "the script starts failed",
                    Advice::Feature(
                        "halb's scripts start failed until they succeed rise times".into(),
                    ),
                ),
                _ => self.unmapped(n, &ctx),
            }
        }
        if s.command.is_none() {
            self.report.unmapped(
                b.pos(),
                &ctx,
                "a vrrp_script without `script` (keepalived ignores it)",
                Advice::None,
            );
        }
        if let Some(t) = s.command.as_deref() {
            if t.contains(['|', '>', '<', '&', ';', '$', '`']) {
                self.report.note(b.pos(), &join_path(&ctx, "script"), "shell syntax in the script line", Advice::Feature("halb runs the command without a shell: wrap it in sh -c '…' or a script file".into()));
            }
        }
        self.scripts.insert(name, s);
    }

    fn sync_group(&mut self, b: &Node) {
        let name = b.arg(0).unwrap_or("").to_owned();
        let ctx = format!("vrrp_sync_group {name}");
        let mut t = emit::table(b.pos(), &ctx);
        emit::set_str(&mut t, "name", &name);
        let mut members = Vec::new();
        for n in b.children() {
            match n.k() {
                "group" => {
                    members.extend(n.words().iter().map(|t| (t.text.clone(), t.pos.clone())))
                }
                k @ ("notify_master" | "notify_backup" | "notify_fault" | "notify") => {
                    if let Some(s) = self.string(n, &ctx, "a command") {
                        emit::set_str(&mut t, k, s);
                    }
                }
                _ => self.unmapped(n, &ctx),
            }
        }
        let list: Vec<String> = members.iter().map(|m| m.0.clone()).collect();
        emit::set_str_array(&mut t, "instances", &list);
        // Checked once the instances are known (see `finish_groups`).
        self.pending_groups.push((t, members));
    }

    // ----------------------------------------------------------- vrrp

    fn instance(&mut self, b: &Node, out: &mut Emitter) {
        let name = b.arg(0).unwrap_or("").to_owned();
        let ctx = format!("vrrp_instance {name}");
        let mut t = emit::table(b.pos(), &ctx);
        emit::set_str(&mut t, "name", &name);
        let mut vips: Vec<Value> = Vec::new();
        let mut seen_vips = BTreeSet::new();
        let mut v6 = false;
        let mut version = self.vrrp.version;
        let mut advert_ms = 1000;
        let mut preempt = true;
        let mut accept: Option<bool> = None;
        let mut garp = (
            self.vrrp.garp_count,
            self.vrrp.garp_interval,
            self.vrrp.garp_delay,
            self.vrrp.garp_refresh,
        );
        let mut auth: Option<(String, Pos)> = None;
        let mut track_scripts: Vec<Table> = Vec::new();
        let mut track_ifs: Vec<String> = Vec::new();
        let mut peers: Vec<String> = Vec::new();
        let mut interface = None;
        let mut vrid = None;
        let mut state_master: Option<Pos> = None;
        let mut priority_set = false;
        for n in b.children() {
            let k = n.k();
            match k {
                "state" => {
                    if n.arg(0) == Some("MASTER") {
                        state_master = Some(n.pos().clone());
                    }
                    match n.arg(0) {
                        Some("MASTER") | Some("BACKUP") => self.report.note(n.pos(), &join_path(&ctx, k), "the state the instance starts in", Advice::Feature("halb starts as backup and the election decides at once (priority and preempt)".into())),
                        _ => self.bad(n, 0, &ctx, "MASTER or BACKUP"),
                    }
                }
                "interface" => {
                    if let Some(s) = self.need_arg(n, 0, &ctx, "an interface name") {
                        interface = Some(s.to_owned());
                        emit::set_str(&mut t, "interface", s);
                    }
                }
                "virtual_router_id" => {
                    vrid = self.int(n, &ctx, 1, 255);
                    if let Some(v) = vrid {
                        emit::set_int(&mut t, "virtual_router_id", v);
                    }
                }
                "priority" => {
                    if let Some(v) = self.int(n, &ctx, 1, 255) {
                        emit::set_int(&mut t, "priority", v);
                    }
                    priority_set = true;
                }
                "advert_int" => advert_ms = self.secs(n, &ctx).unwrap_or(1000),
                "version" => version = self.int(n, &ctx, 2, 3),
                "nopreempt" => preempt = false,
                "preempt" => preempt = true,
                "preempt_delay" => {
                    if let Some(ms) = self.secs(n, &ctx) {
                        emit::set_str(&mut t, "preempt_delay", dur(ms));
                    }
                }
                "accept" => accept = Some(true),
                "no_accept" => accept = Some(false),
                "strict_mode" => {
                    if matches!(n.arg(0), None | Some("on" | "true")) {
                        accept = Some(false);
                    }
                }
                "authentication" => {
                    let mut ty = None;
                    let mut pass = None;
                    for c in n.children() {
                        match c.k() {
                            "auth_type" => ty = c.arg(0).map(str::to_owned),
                            "auth_pass" => {
                                pass = self
                                    .string(c, &ctx, "a password")
                                    .map(|p| (p, c.pos().clone()))
                            }
                            _ => self.unmapped(c, &join_path(&ctx, "authentication")),
                        }
                    }
                    match ty.as_deref() {
                        Some("PASS") => auth = pass,
                        Some("AH") => self.report.unmapped(n.pos(), &join_path(&ctx, "authentication"), "IPsec AH authentication of the adverts", Advice::Feature("auth = { type = \"hmac-sha256\", … } when every router of the VRID is halb (not interoperable with keepalived); or no authentication".into())),
                        _ => self.report.error(n.pos(), &join_path(&ctx, "authentication.auth_type"), "missing or unknown auth_type", Advice::Fix("auth_type PASS or AH".into())),
                    }
                }
                "unicast_src_ip" => {
                    if let Some(s) = self.need_arg(n, 0, &ctx, "an IP address") {
                        emit::set_str(&mut t, "unicast_source", s);
                    }
                }
                "unicast_peer" => {
                    for c in n.children() {
                        peers.push(c.k().to_owned());
                        if !c.args.is_empty() {
                            self.report.unmapped(
                                c.pos(),
                                &join_path(&ctx, "unicast_peer"),
                                "a per-peer option (min_ttl, max_ttl)",
                                Advice::NotSupported,
                            );
                        }
                    }
                }
                "virtual_ipaddress" => {
                    for c in n.children() {
                        if let Some((v, is6)) = self.vip(c, &ctx, interface.as_deref()) {
                            let ip = c.k().split('/').next().unwrap_or("").to_owned();
                            if !seen_vips.insert(ip.clone()) {
                                self.report.note(
                                    c.pos(),
                                    &join_path(&ctx, "virtual_ipaddress"),
                                    format!("{ip} is listed twice (keepalived adds it once)"),
                                    Advice::Fix("written once".into()),
                                );
                                continue;
                            }
                            v6 |= is6;
                            vips.push(v);
                        }
                    }
                }
                "track_interface" => {
                    for c in n.children() {
                        track_ifs.push(c.k().to_owned());
                        if !c.args.is_empty() && c.arg(0) != Some("weight") {
                            self.report.unmapped(
                                &c.args[0].pos,
                                &join_path(&ctx, "track_interface"),
                                format!("{:?} after the interface name", c.arg(0).unwrap_or("")),
                                Advice::Fix("one interface a line, optionally `weight N`".into()),
                            );
                        }
                        if c.arg(0) == Some("weight") {
                            self.report.unmapped(c.pos(), &join_path(&ctx, "track_interface weight"), "lowers the priority while the interface is down", Advice::Feature("a down tracked interface is Fault in halb (as keepalived's weight 0)".into()));
                        }
                    }
                }
                "track_script" => {
                    for c in n.children() {
                        let sname = c.k();
                        let Some(s) = self.scripts.get(sname).cloned() else {
                            self.report.unmapped(c.pos(), &join_path(&ctx, "track_script"), format!("vrrp_script {sname:?} is not defined above (keepalived ignores it)"), Advice::None);
                            continue;
                        };
                        let Some(cmd) = s.command.clone() else {
                            self.report.unmapped(
                                c.pos(),
                                &join_path(&ctx, "track_script"),
                                format!("vrrp_script {sname:?} has no script"),
                                Advice::None,
                            );
                            continue;
                        };
                        let mut ts = Table::new();
                        emit::set_str(&mut ts, "name", sname);
                        emit::set_str(&mut ts, "command", cmd);
                        let interval = s.interval.unwrap_or(1000).max(10);
                        emit::set_str(&mut ts, "interval", dur(interval));
                        if let Some(to) = s.timeout {
                            emit::set_str(&mut ts, "timeout", dur(to.max(10)));
                        }
                        emit::set_int(&mut ts, "rise", s.rise.unwrap_or(1));
                        emit::set_int(&mut ts, "fall", s.fall.unwrap_or(1));
                        let mut w = s.weight;
                        if c.arg(0) == Some("weight") {
                            if let Some(v) = c.arg(1).and_then(|v| v.parse::<i64>().ok()) {
                                w = v;
                            }
                        }
                        emit::set_int(&mut ts, "weight", w);
                        track_scripts.push(ts);
                    }
                }
                "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify" => {
                    if let Some(s) = self.string(n, &ctx, "a command") {
                        emit::set_str(&mut t, k, s);
                    }
                }
                "notify_master_rx_lower_pri" | "notify_deleted" => self.report.unmapped(
                    n.pos(),
                    &join_path(&ctx, k),
                    "a notify script for an event halb does not signal",
                    Advice::NotSupported,
                ),
                "garp_master_delay" => garp.2 = self.secs(n, &ctx).unwrap_or(5000),
                "garp_master_repeat" => garp.0 = self.int(n, &ctx, 0, 100).unwrap_or(5),
                "garp_master_refresh" => garp.3 = self.secs(n, &ctx).unwrap_or(0),
                "garp_interval" => garp.1 = self.secs(n, &ctx).unwrap_or(0),
                "garp_master_refresh_repeat" => self.refresh_repeat(n, &ctx),
                "lvs_sync_daemon_interface" => self.sync_daemon(n, &ctx, Some(&name), out),
                "smtp_alert" => self.report.unmapped(
                    n.pos(),
                    &join_path(&ctx, k),
                    "mails the instance's state changes",
                    Advice::Feature("a notify script that sends the mail".into()),
                ),
                _ => self.unmapped(n, &ctx),
            }
        }
        if interface.is_none() || vrid.is_none() {
            self.report.error(
                b.pos(),
                &ctx,
                "an instance needs `interface` and `virtual_router_id`",
                Advice::Fix("add both (keepalived refuses the instance too)".into()),
            );
        }
        if !priority_set {
            // keepalived: no priority and state MASTER make the address
            // owner (255); halb keeps 255 for a director that owns the VIPs.
            let p = match &state_master {
                Some(pos) => {
                    self.report.note(pos, &join_path(&ctx, "state"), "state MASTER without a priority: keepalived runs it at 255, as the address owner", Advice::Key("priority = 254 (written: the highest below the owner; 255 only if the VIPs are this director's own addresses)".into()));
                    254
                }
                None => 100,
            };
            emit::set_int(&mut t, "priority", p);
        }
        let version = if v6 { 3 } else { version.unwrap_or(2) };
        emit::set_int(&mut t, "version", version);
        let advert_ms = if version == 2 && advert_ms % 1000 != 0 {
            let up = advert_ms.div_ceil(1000).max(1) * 1000;
            self.report.note(
                b.pos(),
                &join_path(&ctx, "advert_int"),
                format!("VRRPv2 adverts in whole seconds: {} written", dur(up)),
                Advice::Feature("version = 3 for sub-second adverts".into()),
            );
            up
        } else if version == 3 {
            (advert_ms / 10 * 10).clamp(10, 40950)
        } else {
            advert_ms.max(1000)
        };
        emit::set_str(&mut t, "advert_interval", dur(advert_ms));
        emit::set_bool(&mut t, "preempt", preempt);
        let accept = accept.unwrap_or(!self.vrrp.strict);
        emit::set_bool(&mut t, "accept", accept);
        if !peers.is_empty() {
            emit::set_str_array(&mut t, "unicast_peers", &peers);
        } else if t.contains_key("unicast_source") {
            t.remove("unicast_source");
            self.report.unmapped(
                b.pos(),
                &join_path(&ctx, "unicast_src_ip"),
                "a source address for multicast adverts",
                Advice::NotSupported,
            );
        }
        if let Some((pass, pos)) = auth {
            if version == 3 {
                self.report.unmapped(
                    &pos,
                    &join_path(&ctx, "authentication"),
                    "keepalived ignores authentication with VRRPv3",
                    Advice::None,
                );
            } else {
                let bytes = pass.as_bytes();
                let cut = if bytes.len() > 8 {
                    let mut end = 8;
                    while !pass.is_char_boundary(end) {
                        end -= 1;
                    }
                    let short = pass[..end].to_owned();
                    self.report.note(&pos, &join_path(&ctx, "authentication.auth_pass"), format!("a password of {} bytes: keepalived sends only the first 8, {short:?}, which is what was written", bytes.len()), Advice::Key("auth.password".into()));
                    short
                } else {
                    pass
                };
                let v = emit::inline(vec![
                    ("type", "pass".into()),
                    ("password", cut.as_str().into()),
                ]);
                t.insert("auth", toml_edit::value(v));
            }
        }
        let g = emit::inline(vec![
            ("count", garp.0.into()),
            ("interval", dur(garp.1).into()),
            ("delay", dur(garp.2).into()),
            ("refresh", dur(garp.3).into()),
        ]);
        t.insert("garp", toml_edit::value(g));
        if !track_ifs.is_empty() {
            emit::set_str_array(&mut t, "track_interface", &track_ifs);
        }
        if vips.is_empty() {
            self.report.unmapped(
                b.pos(),
                &ctx,
                "an instance without virtual_ipaddress (it only elects a master)",
                Advice::Fix(
                    "halb needs at least one VIP per instance: the instance was left out".into(),
                ),
            );
            return;
        }
        emit::set_array(&mut t, "virtual_ipaddress", vips);
        if !track_scripts.is_empty() {
            let mut a = toml_edit::ArrayOfTables::new();
            for ts in track_scripts {
                a.push(ts);
            }
            t.insert("track_script", toml_edit::Item::ArrayOfTables(a));
        }
        if self.sync_id_from.as_deref() == Some(name.as_str()) {
            if let Some(v) = vrid {
                let p = b.pos().clone();
                emit::set_int(
                    out.global_table(&["ipvs", "sync_daemon"], &p, ""),
                    "sync_id",
                    v,
                );
            }
        }
        self.instances.insert(name);
        out.vrrp_instance(t);
    }

    fn vip(&mut self, c: &Node, ctx: &str, _iface: Option<&str>) -> Option<(Value, bool)> {
        let ctx = join_path(ctx, "virtual_ipaddress");
        let raw = c.k();
        let (addr, prefix) = match raw.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw, None),
        };
        let ip: IpAddr = match addr.parse() {
            Ok(ip) => ip,
            Err(_) => {
                self.report.error(
                    c.pos(),
                    &ctx,
                    format!("{raw:?} is not an IP address"),
                    Advice::Fix("write ADDRESS[/PREFIX] [dev IF] [label L]".into()),
                );
                return None;
            }
        };
        let max = if ip.is_ipv6() { 128 } else { 32 };
        let prefix = match prefix.map(|p| p.parse::<u8>()) {
            None => max,
            Some(Ok(p)) if p <= max => p,
            Some(_) => {
                self.report.error(
                    c.pos(),
                    &ctx,
                    format!("bad prefix in {raw:?}"),
                    Advice::Fix(format!("a prefix length 0..{max}")),
                );
                return None;
            }
        };
        let cidr = format!("{ip}/{prefix}");
        let mut dev = None;
        let mut label = None;
        let mut i = 0;
        while i < c.args.len() {
            let a = c.args[i].text.as_str();
            let val = c.args.get(i + 1).map(|t| t.text.clone());
            match a {
                "dev" => dev = val,
                "label" => label = val,
                "no_track" | "home" | "nodad" | "-nodad" | "noprefixroute" | "autojoin"
                | "preferred_lft" => {
                    if a == "preferred_lft" {
                        i += 1;
                    }
                    self.report.unmapped(
                        &c.args[i.min(c.args.len() - 1)].pos,
                        &format!("{ctx} {a}"),
                        "an address flag",
                        Advice::NotSupported,
                    );
                    i += 1;
                    continue;
                }
                _ => {
                    self.report.unmapped(
                        &c.args[i].pos,
                        &format!("{ctx} {a}"),
                        "an address option (scope, broadcast, peer)",
                        Advice::NotSupported,
                    );
                }
            }
            i += 2;
        }
        let v: Value = if dev.is_none() && label.is_none() {
            cidr.as_str().into()
        } else {
            let mut pairs: Vec<(&str, Value)> = vec![("address", cidr.as_str().into())];
            if let Some(d) = &dev {
                pairs.push(("interface", d.as_str().into()));
            }
            if let Some(l) = &label {
                pairs.push(("label", l.as_str().into()));
            }
            emit::inline(pairs)
        };
        Some((v, ip.is_ipv6()))
    }

    fn sync_daemon(&mut self, n: &Node, ctx: &str, instance: Option<&str>, out: &mut Emitter) {
        let Some(iface) = self.need_arg(n, 0, ctx, "an interface") else {
            return;
        };
        let iface = iface.to_owned();
        // global_defs: lvs_sync_daemon IF INSTANCE [id N] [maxlen N] [port N] [ttl N] [group IP]
        let (inst, rest) = match instance {
            Some(i) => (Some(i.to_owned()), 1),
            None => (n.arg(1).map(str::to_owned), 2),
        };
        if self.sync_daemon_done {
            self.report.unmapped(
                n.pos(),
                &join_path(ctx, n.k()),
                "a second connection-sync daemon",
                Advice::Feature("halb runs one sync daemon ([global.ipvs.sync_daemon])".into()),
            );
            return;
        }
        self.sync_daemon_done = true;
        let t = out.global_table(
            &["ipvs", "sync_daemon"],
            n.pos(),
            &format!("{} {iface}", n.k()),
        );
        emit::set_str(t, "interface", &iface);
        match &inst {
            Some(i) => emit::set_str(t, "vrrp_instance", i),
            None => emit::set_str(t, "state", "master"),
        }
        let mut sync_id = 0;
        let mut explicit_id = false;
        let mut i = rest;
        while i + 1 < n.args.len() + 1 {
            let (Some(k), v) = (n.arg(i), n.arg(i + 1)) else {
                break;
            };
            match (k, v.and_then(|v| v.parse::<i64>().ok())) {
                ("id", Some(v)) => {
                    sync_id = v;
                    explicit_id = true;
                }
                ("maxlen", Some(v)) => emit::set_int(t, "max_len", v),
                ("port", Some(v)) => emit::set_int(t, "port", v),
                ("ttl", Some(v)) => emit::set_int(t, "ttl", v),
                ("group", _) => emit::set_str(t, "group", v.unwrap_or("")),
                _ => {
                    let pos = n.args[i].pos.clone();
                    self.report.error(
                        &pos,
                        &join_path(ctx, n.k()),
                        format!("unknown option {k:?}"),
                        Advice::Fix("id N, maxlen N, port N, ttl N or group IP".into()),
                    );
                }
            }
            i += 2;
        }
        emit::set_int(t, "sync_id", sync_id);
        if !explicit_id {
            self.sync_id_from = inst;
        }
    }
}

// ------------------------------------------------------ virtual servers

/// Settings a virtual_server gives its real servers and checkers.
#[derive(Debug, Clone, Default)]
struct CheckDefaults {
    delay_loop: Option<u64>,
    retry: Option<i64>,
    delay_before_retry: Option<u64>,
    warmup: Option<u64>,
    connect_timeout: Option<u64>,
    alpha: bool,
    virtualhost: Option<String>,
}

fn checker_type(k: &str) -> bool {
    matches!(
        k,
        "HTTP_GET"
            | "SSL_GET"
            | "TCP_CHECK"
            | "SMTP_CHECK"
            | "DNS_CHECK"
            | "MISC_CHECK"
            | "UDP_CHECK"
            | "PING_CHECK"
            | "FILE_CHECK"
            | "BFD_CHECK"
    )
}

impl Mapper<'_> {
    /// Common defaults keys; true when `n` was one.
    fn defaults_key(&mut self, n: &Node, ctx: &str, d: &mut CheckDefaults) -> bool {
        match n.k() {
            "delay_loop" => d.delay_loop = self.secs(n, ctx),
            "retry" | "nb_get_retry" => d.retry = self.int(n, ctx, 0, 999),
            "delay_before_retry" => d.delay_before_retry = self.secs(n, ctx),
            "warmup" => d.warmup = self.secs(n, ctx),
            "connect_timeout" => d.connect_timeout = self.secs(n, ctx),
            "alpha" => d.alpha = true,
            "virtualhost" => d.virtualhost = self.string(n, ctx, "a host name"),
            _ => return false,
        }
        true
    }

    fn vs_group(&mut self, b: &Node) {
        let name = b.arg(0).unwrap_or("").to_owned();
        let ctx = format!("virtual_server_group {name}");
        let mut list = Vec::new();
        for n in b.children() {
            if n.k() == "fwmark" {
                match n.arg(0).and_then(|m| m.parse::<u32>().ok()) {
                    Some(m) => list.push((format!("fwmark {m}"), n.pos().clone())),
                    None => self.bad(n, 0, &ctx, "a firewall mark"),
                }
                continue;
            }
            let Some(port) = n.arg(0) else {
                self.report.error(
                    n.pos(),
                    &ctx,
                    "an entry needs an address and a port",
                    Advice::Fix("10.0.0.1 80, 10.0.0.1-10 80 or fwmark 1".into()),
                );
                continue;
            };
            let raw = n.k();
            let (base, last) = match raw.rsplit_once('-') {
                Some((b, l)) if b.parse::<IpAddr>().is_ok() => (b, Some(l)),
                _ => (raw, None),
            };
            let Ok(ip) = base.parse::<IpAddr>() else {
                self.report.error(
                    n.pos(),
                    &ctx,
                    format!("{raw:?} is not an address or a range"),
                    Advice::Fix("10.0.0.1 or 10.0.0.1-10".into()),
                );
                continue;
            };
            let mut addrs = vec![ip];
            if let Some(last) = last {
                match (
                    ip,
                    u32::from_str_radix(last, if ip.is_ipv6() { 16 } else { 10 }),
                ) {
                    (IpAddr::V4(v4), Ok(end)) if end <= 255 && end >= u32::from(v4.octets()[3]) => {
                        let o = v4.octets();
                        addrs = (u32::from(o[3])..=end)
                            .map(|x| IpAddr::from([o[0], o[1], o[2], x as u8]))
                            .collect();
                    }
                    (IpAddr::V6(v6), Ok(end))
                        if end <= 0xffff
                            && end >= u32::from(v6.segments()[7])
                            && end - u32::from(v6.segments()[7]) < MAX_RANGE =>
                    {
                        let mut s = v6.segments();
                        let start = s[7];
                        addrs = (u32::from(start)..=end)
                            .map(|x| {
                                s[7] = x as u16;
                                IpAddr::from(s)
                            })
                            .collect();
                    }
                    _ => {
                        self.report.error(n.pos(), &ctx, format!("bad range {raw:?}"), Advice::Fix("the last part of the address up to a number not below it: 10.0.0.1-10".into()));
                        continue;
                    }
                }
            }
            for a in addrs {
                match sockaddr(&a.to_string(), port) {
                    Some(s) if port != "0" => list.push((s, n.pos().clone())),
                    _ => {
                        self.bad(n, 0, &ctx, "a port 1..65535");
                        break;
                    }
                }
            }
        }
        self.vsgroups.insert(name, list);
    }

    fn virtual_server(&mut self, b: &Node, out: &mut Emitter) {
        let head: Vec<&str> = b.args.iter().map(|t| t.text.as_str()).collect();
        let ctx = format!("virtual_server {}", head.join(" "));
        // The endpoints: one, or a group's.
        let endpoints: Vec<(String, Pos)> = match head.as_slice() {
            ["group", g] => match self.vsgroups.get(*g) {
                Some(l) => l.clone(),
                None => {
                    self.report.error(
                        b.pos(),
                        &ctx,
                        format!("virtual_server_group {g:?} is not defined above"),
                        Advice::Fix("define the group before the virtual_server".into()),
                    );
                    return;
                }
            },
            ["fwmark", m] => match m.parse::<u32>() {
                Ok(m) => vec![(format!("fwmark {m}"), b.pos().clone())],
                Err(_) => {
                    self.bad(b, 1, &ctx, "a firewall mark");
                    return;
                }
            },
            [ip, port] => match sockaddr(ip, port) {
                Some(_) if *port == "0" => {
                    self.bad(b, 1, &ctx, "a port 1..65535 (fwmark N for every port)");
                    return;
                }
                Some(s) => vec![(s, b.pos().clone())],
                None => {
                    self.report.error(
                        b.pos(),
                        &ctx,
                        "not an IP address and a port",
                        Advice::Fix(
                            "virtual_server 192.0.2.1 80 (keepalived does not resolve names)"
                                .into(),
                        ),
                    );
                    return;
                }
            },
            _ => {
                self.report.error(
                    b.pos(),
                    &ctx,
                    "virtual_server needs IP PORT, fwmark N or group NAME",
                    Advice::Fix("virtual_server 192.0.2.1 80 {".into()),
                );
                return;
            }
        };
        let mut svc = Table::new();
        emit::set_str(&mut svc, "data_plane", "ipvs");
        let mut d = CheckDefaults::default();
        let mut fwd = "";
        let mut on_down = "remove";
        let mut reals: Vec<&Node> = Vec::new();
        let mut persistence: Option<Table> = None;
        let mut granularity: Option<String> = None;
        let mut protocol = "tcp";
        let mut sorry: Option<String> = None;
        let mut sorry_fwd = "";
        for n in b.children() {
            let k = n.k();
            if self.defaults_key(n, &ctx, &mut d) {
                continue;
            }
            match k {
                "lb_algo" | "lvs_sched" => {
                    if let Some(s) = self.need_arg(n, 0, &ctx, "a scheduler") {
                        emit::set_str(&mut svc, "scheduler", s);
                    }
                }
                "lb_kind" | "lvs_method" => match n.arg(0) {
                    Some("NAT") => fwd = "masq",
                    Some("DR") => fwd = "route",
                    Some("TUN") => {
                        fwd = "tunnel";
                        if n.args.len() > 1 {
                            self.report.unmapped(n.pos(), &join_path(&ctx, k), "tunnel options (type, port, checksum)", Advice::Key("tunnel_type / tunnel_port / tunnel_checksum on each real server".into()));
                        }
                    }
                    _ => self.bad(n, 0, &ctx, "NAT, DR or TUN"),
                },
                "persistence_timeout" => {
                    let secs = match n.arg(0) {
                        None => Some(360),
                        Some(_) => self.int(n, &ctx, 1, 2_678_400),
                    };
                    if let Some(s) = secs {
                        let mut p = Table::new();
                        emit::set_str(&mut p, "timeout", dur(s as u64 * 1000));
                        persistence = Some(p);
                    }
                }
                "persistence_granularity" => granularity = self.string(n, &ctx, "a netmask"),
                "protocol" => match n.arg(0) {
                    Some("TCP") => protocol = "tcp",
                    Some("UDP") => protocol = "udp",
                    Some("SCTP") => protocol = "sctp",
                    _ => self.bad(n, 0, &ctx, "TCP, UDP or SCTP"),
                },
                "ops" => emit::set_bool(&mut svc, "one_packet", true),
                "inhibit_on_failure" => on_down = "quiescent",
                "sorry_server" => {
                    let port = n.arg(1).unwrap_or("0");
                    match n.arg(0).and_then(|ip| sockaddr(ip, port)) {
                        Some(a) => sorry = Some(a),
                        None => self.report.error(
                            n.pos(),
                            &join_path(&ctx, k),
                            "not an IP address and a port",
                            Advice::Fix("sorry_server 192.0.2.50 80".into()),
                        ),
                    }
                }
                "sorry_server_lvs_method" => match n.arg(0) {
                    Some("NAT") => sorry_fwd = "masq",
                    Some("DR") => sorry_fwd = "route",
                    Some("TUN") => sorry_fwd = "tunnel",
                    _ => self.bad(n, 0, &ctx, "NAT, DR or TUN"),
                },
                "real_server" => reals.push(n),
                "smtp_alert" => self.report.note(
                    n.pos(),
                    &join_path(&ctx, k),
                    "mails this service's changes",
                    Advice::Feature(
                        "[global.alert] (written from global_defs) mails every service's changes"
                            .into(),
                    ),
                ),
                "lvs_flags" | "hashed" | "flag-1" | "flag-2" | "flag-3" | "sh-port"
                | "sh-fallback" | "mh-port" | "mh-fallback" => {
                    let mut flags = Vec::new();
                    for w in std::iter::once(k).chain(n.args.iter().map(|t| t.text.as_str())) {
                        match w {
                            "sh-port" | "mh-port" | "flag-2" => flags.push("port"),
                            "sh-fallback" | "mh-fallback" | "flag-1" => flags.push("fallback"),
                            "lvs_flags" => {}
                            o => self.report.unmapped(
                                n.pos(),
                                &join_path(&ctx, o),
                                "a scheduler flag",
                                Advice::NotSupported,
                            ),
                        }
                    }
                    if !flags.is_empty() {
                        emit::set_str_array(&mut svc, "scheduler_flags", &flags);
                    }
                }
                _ => self.unmapped(n, &ctx),
            }
        }
        if fwd.is_empty() {
            // keepalived: "no forwarding method set, setting default NAT".
            fwd = "masq";
            if reals
                .iter()
                .any(|r| !r.children().iter().any(|c| c.k() == "lvs_method"))
            {
                self.report.note(
                    b.pos(),
                    &ctx,
                    "no lb_kind: keepalived warns and uses NAT",
                    Advice::Key("forward = \"masq\" (written)".into()),
                );
            }
        }
        emit::set_str(&mut svc, "on_down", on_down);
        if let Some(a) = &sorry {
            // keepalived adds it (weight 1) while no real server is alive,
            // by the service's lb_kind unless sorry_server_lvs_method says.
            emit::set_str(&mut svc, "fallback", a);
            emit::set_str(
                &mut svc,
                "fallback_forward",
                if sorry_fwd.is_empty() { fwd } else { sorry_fwd },
            );
        }
        if !svc.contains_key("scheduler") {
            emit::set_str(&mut svc, "scheduler", "wlc");
        }
        if let Some(mut p) = persistence {
            if let Some(g) = granularity {
                let v6 = endpoints.first().is_some_and(|e| e.0.starts_with('['));
                if v6 {
                    if let Ok(n) = g.parse::<i64>() {
                        emit::set_int(&mut p, "prefix_v6", n);
                    }
                } else {
                    emit::set_str(&mut p, "netmask", g);
                }
            }
            emit::set_sub_table(&mut svc, "persistence", p);
        }
        // A real server without a port only where every endpoint is a mark.
        let all_fwmark = endpoints.iter().all(|e| e.0.starts_with("fwmark"));
        // The real servers (the same under every endpoint of a group).
        let mut real_tables = Vec::new();
        for r in reals {
            if let Some(t) = self.real_server(r, &ctx, &d, fwd, all_fwmark) {
                real_tables.push((t, r.pos().clone()));
            }
        }
        for (ep, pos) in endpoints {
            let mut t = svc.clone();
            let what = if ep.starts_with("fwmark") {
                ctx.clone()
            } else {
                format!("{ctx}: {ep}")
            };
            emit::origin(&mut t, &pos, &what);
            match ep.strip_prefix("fwmark ") {
                Some(m) => emit::set_int(&mut t, "fwmark", m.parse::<i64>().unwrap_or(0)),
                None => {
                    emit::set_str(&mut t, "listen", &ep);
                    emit::set_str(&mut t, "protocol", protocol);
                }
            }
            for (r, rpos) in &real_tables {
                if r.get("address").and_then(|a| a.as_str()) == Some(ep.as_str()) {
                    self.report.unmapped(rpos, &format!("{ctx}.real_server"), format!("the real server {ep} is this virtual service's own address"), Advice::Fix("halb refuses a service that would loop into itself: the real server was left out of this service".into()));
                    continue;
                }
                emit::push_real_server(&mut t, r.clone());
            }
            out.virtual_service(t);
        }
    }

    fn real_server(
        &mut self,
        b: &Node,
        vctx: &str,
        vd: &CheckDefaults,
        fwd: &str,
        vfwmark: bool,
    ) -> Option<Table> {
        let ctx = format!(
            "{vctx}.real_server {}",
            b.args
                .iter()
                .map(|t| t.text.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let ip = b.arg(0)?;
        let port = b.arg(1).unwrap_or("0");
        let Some(addr) = sockaddr(ip, port) else {
            self.report.error(
                b.pos(),
                &ctx,
                "not an IP address and a port",
                Advice::Fix("real_server 192.0.2.11 80".into()),
            );
            return None;
        };
        if port == "0" && !vfwmark {
            self.report.unmapped(
                b.pos(),
                &ctx,
                "a real server without a port in a service of one port",
                Advice::Fix("give the real server's port (it was left out)".into()),
            );
            return None;
        }
        let head: Vec<&str> = b.args.iter().map(|t| t.text.as_str()).collect();
        let mut t = emit::table(b.pos(), &format!("real_server {}", head.join(" ")));
        emit::set_str(&mut t, "address", addr);
        let mut d = vd.clone();
        let mut fwd = fwd;
        let mut checkers: Vec<&Node> = Vec::new();
        let mut inhibit: Option<&Node> = None;
        for n in b.children() {
            if self.defaults_key(n, &ctx, &mut d) {
                continue;
            }
            match n.k() {
                "weight" => {
                    if let Some(w) = self.int(n, &ctx, 0, 65535) {
                        emit::set_int(&mut t, "weight", w);
                    }
                }
                "uthreshold" => {
                    if let Some(w) = self.int(n, &ctx, 0, i64::from(u32::MAX)) {
                        emit::set_int(&mut t, "upper_threshold", w);
                    }
                }
                "lthreshold" => {
                    if let Some(w) = self.int(n, &ctx, 0, i64::from(u32::MAX)) {
                        emit::set_int(&mut t, "lower_threshold", w);
                    }
                }
                "lvs_method" => match n.arg(0) {
                    Some("NAT") => fwd = "masq",
                    Some("DR") => fwd = "route",
                    Some("TUN") => fwd = "tunnel",
                    _ => self.bad(n, 0, &ctx, "NAT, DR or TUN"),
                },
                "inhibit_on_failure" => inhibit = Some(n),
                k if checker_type(k) => checkers.push(n),
                _ => self.unmapped(n, &ctx),
            }
        }
        emit::set_str(&mut t, "forward", fwd);
        let mut first = true;
        for c in checkers {
            if !first {
                self.report.unmapped(c.pos(), &join_path(&ctx, c.k()), "a further checker: keepalived takes the real server out when any checker fails", Advice::Feature("halb runs one check per real server (the first was imported)".into()));
                continue;
            }
            if let Some(check) = self.checker(c, &ctx, &d, port) {
                let portless = matches!(
                    check.get("type").and_then(|v| v.as_str()),
                    Some("icmp" | "external")
                );
                if port == "0"
                    && !portless
                    && !check.contains_key("port")
                    && !check.contains_key("address")
                {
                    self.report.unmapped(
                        c.pos(),
                        &join_path(&ctx, c.k()),
                        "a check of a real server without a port, without connect_port",
                        Advice::Fix(
                            "add connect_port (halb needs a port to probe): the check was left out"
                                .into(),
                        ),
                    );
                    first = false;
                    continue;
                }
                emit::set_sub_table(&mut t, "check", check);
                first = false;
            }
        }
        if let Some(n) = inhibit {
            if t.contains_key("check") {
                // Weight 0 instead of removal, for this real server only.
                emit::set_str(&mut t, "on_down", "quiescent");
            } else {
                self.report.unmapped(
                    n.pos(),
                    &join_path(&ctx, "inhibit_on_failure"),
                    "weight 0 instead of removal when the checker fails: this real server has no checker halb imported",
                    Advice::None,
                );
            }
        }
        Some(t)
    }

    fn checker(&mut self, b: &Node, rctx: &str, rd: &CheckDefaults, rport: &str) -> Option<Table> {
        let kind = b.k();
        let ctx = join_path(rctx, kind);
        let mut d = rd.clone();
        let mut t = emit::table(b.pos(), kind);
        let (ty, default_retry, default_dbr) = match kind {
            "HTTP_GET" => ("http", 1, Some(3000)),
            "SSL_GET" => ("https", 1, Some(3000)),
            "TCP_CHECK" => ("tcp", 1, Some(1000)),
            "SMTP_CHECK" => ("smtp", 1, Some(1000)),
            "DNS_CHECK" => ("dns", 3, None),
            "MISC_CHECK" => ("external", 0, Some(1000)),
            "UDP_CHECK" => ("udp", 1, Some(1000)),
            "PING_CHECK" => ("icmp", 1, Some(1000)),
            _ => {
                self.unmapped(b, rctx);
                return None;
            }
        };
        emit::set_str(&mut t, "type", ty);
        let mut connect_ip: Option<String> = None;
        let mut connect_port: Option<String> = None;
        let mut misc_timeout = None;
        let mut urls = 0;
        for n in b.children() {
            if self.defaults_key(n, &ctx, &mut d) {
                continue;
            }
            match (kind, n.k()) {
                (_, "connect_ip") => connect_ip = n.arg(0).map(str::to_owned),
                (_, "connect_port") => connect_port = n.arg(0).map(str::to_owned),
                (_, "bindto" | "bind_port" | "bind_if" | "fwmark") => self.unmapped(n, &ctx),
                ("HTTP_GET" | "SSL_GET", "url") => {
                    urls += 1;
                    if urls > 1 {
                        self.report.unmapped(
                            n.pos(),
                            &join_path(&ctx, "url"),
                            "a further URL: keepalived checks every url",
                            Advice::Feature(
                                "halb checks one path per real server (the first was imported)"
                                    .into(),
                            ),
                        );
                        continue;
                    }
                    self.url(n, &ctx, &mut t);
                }
                ("HTTP_GET" | "SSL_GET", "http_protocol") => self.report.note(
                    n.pos(),
                    &join_path(&ctx, "http_protocol"),
                    "the HTTP version of the request",
                    Advice::Feature("halb sends HTTP/1.1 with a Host header".into()),
                ),
                ("SSL_GET", "enable_sni") => {}
                ("HTTP_GET" | "SSL_GET", "tls_compliant" | "fast_recovery") => {
                    self.unmapped(n, &ctx)
                }
                ("SMTP_CHECK", "helo_name") => {
                    if let Some(h) = self.string(n, &ctx, "a name") {
                        emit::set_str(&mut t, "helo_name", h);
                    }
                }
                ("SMTP_CHECK", "host") => {
                    if connect_ip.is_some() {
                        self.report.unmapped(
                            n.pos(),
                            &join_path(&ctx, "host"),
                            "a further host to check",
                            Advice::Feature(
                                "one check per real server (the first host was imported)".into(),
                            ),
                        );
                        continue;
                    }
                    for c in n.children() {
                        match c.k() {
                            "connect_ip" => connect_ip = c.arg(0).map(str::to_owned),
                            "connect_port" => connect_port = c.arg(0).map(str::to_owned),
                            _ => self.unmapped(c, &join_path(&ctx, "host")),
                        }
                    }
                }
                ("DNS_CHECK", "type") => match n.arg(0).map(|s| s.to_ascii_uppercase()) {
                    Some(q) if ["A", "AAAA", "NS", "SOA", "MX", "TXT"].contains(&q.as_str()) => {
                        emit::set_str(&mut t, "query_type", q)
                    }
                    _ => self.report.unmapped(
                        n.pos(),
                        &join_path(&ctx, "type"),
                        "a query type halb does not ask",
                        Advice::Feature("A, AAAA, NS, SOA, MX or TXT".into()),
                    ),
                },
                ("DNS_CHECK", "name") => {
                    if let Some(q) = self.string(n, &ctx, "a name") {
                        emit::set_str(&mut t, "query_name", q);
                    }
                }
                ("MISC_CHECK", "misc_path") => {
                    if let Some(cmd) = self.string(n, &ctx, "a command") {
                        let parts: Vec<&str> = cmd.split_whitespace().collect();
                        emit::set_str_array(&mut t, "command", &parts);
                        self.report.note(n.pos(), &join_path(&ctx, "misc_path"), "keepalived runs the command as written", Advice::Feature("halb runs it without a shell and appends VIP VPORT RIP RPORT to its arguments (also in HALB_VIP…): a script that reads $1 of its own args is unaffected, one that checks $# is not".into()));
                    }
                }
                ("MISC_CHECK", "misc_timeout") => misc_timeout = self.secs(n, &ctx),
                ("MISC_CHECK", "misc_dynamic") => emit::set_bool(&mut t, "dynamic_weight", true),
                ("MISC_CHECK", "user") => self.report.unmapped(
                    n.pos(),
                    &join_path(&ctx, "user"),
                    "runs the script as another user",
                    Advice::Feature("checks run as halb's user".into()),
                ),
                ("UDP_CHECK", "payload") => {
                    let hex = n.arg(0).unwrap_or("");
                    match hex_text(hex) {
                        Some(s) => emit::set_str(&mut t, "payload", s),
                        None => self.report.unmapped(
                            n.pos(),
                            &join_path(&ctx, "payload"),
                            "a binary payload",
                            Advice::Feature("halb's payload is text".into()),
                        ),
                    }
                }
                ("UDP_CHECK", "require_reply") => match n.arg(0) {
                    None => {
                        emit::set_bool(&mut t, "expect_reply", true);
                    }
                    Some(hex) => match hex_text(hex) {
                        Some(s) => emit::set_str(&mut t, "reply_contains", s),
                        None => self.report.unmapped(
                            n.pos(),
                            &join_path(&ctx, "require_reply"),
                            "a binary reply pattern",
                            Advice::Feature("halb's reply_contains is text".into()),
                        ),
                    },
                },
                _ => self.unmapped(n, &ctx),
            }
        }
        match (connect_ip, connect_port) {
            (Some(ip), port) => {
                let port = port.unwrap_or_else(|| rport.to_owned());
                match sockaddr(&ip, &port) {
                    Some(a) if port != "0" => emit::set_str(&mut t, "address", a),
                    _ => self.report.unmapped(
                        b.pos(),
                        &join_path(&ctx, "connect_ip"),
                        "checks another address",
                        Advice::Fix(
                            "give connect_port too (halb's check address needs the port)".into(),
                        ),
                    ),
                }
            }
            (None, Some(p)) => match p.parse::<u16>() {
                Ok(p) if p > 0 => emit::set_int(&mut t, "port", i64::from(p)),
                _ => self.report.error(
                    b.pos(),
                    &join_path(&ctx, "connect_port"),
                    format!("{p:?} is not a port"),
                    Advice::Fix("a port 1..65535".into()),
                ),
            },
            (None, None) => {}
        }
        if kind == "MISC_CHECK" && !t.contains_key("command") {
            self.report.unmapped(
                b.pos(),
                &ctx,
                "a MISC_CHECK without misc_path",
                Advice::None,
            );
            return None;
        }
        if ty == "http" || ty == "https" {
            if let Some(h) = &d.virtualhost {
                if !t.contains_key("host") {
                    emit::set_str(&mut t, "host", h);
                }
            }
        }
        let interval = d.delay_loop.unwrap_or(60_000).max(10);
        emit::set_str(&mut t, "interval", dur(interval));
        let timeout = if kind == "MISC_CHECK" {
            misc_timeout.unwrap_or(interval)
        } else {
            d.connect_timeout.unwrap_or(5000)
        };
        emit::set_str(&mut t, "timeout", dur(timeout.max(10)));
        let retry = d.retry.unwrap_or(default_retry);
        emit::set_int(&mut t, "fall", retry + 1);
        emit::set_int(&mut t, "rise", 1);
        let dbr = d
            .delay_before_retry
            .or(default_dbr)
            .unwrap_or(interval)
            .max(10);
        emit::set_str(&mut t, "delay_before_retry", dur(dbr));
        // keepalived's warmup defaults to delay_loop (a random delay of up
        // to one interval before the first check).
        emit::set_str(&mut t, "warmup", dur(d.warmup.unwrap_or(interval)));
        emit::set_str(
            &mut t,
            "initial",
            if d.alpha { "fully_down" } else { "fully_up" },
        );
        Some(t)
    }

    fn url(&mut self, n: &Node, ctx: &str, t: &mut Table) {
        let ctx = join_path(ctx, "url");
        let mut statuses: Vec<Value> = Vec::new();
        for c in n.children() {
            match c.k() {
                "path" => {
                    if let Some(p) = self.string(c, &ctx, "a path") {
                        emit::set_str(t, "path", p);
                    }
                }
                "digest" => {
                    if let Some(p) = self.need_arg(c, 0, &ctx, "an MD5 digest") {
                        emit::set_str(t, "body_md5", p.to_ascii_lowercase());
                    }
                }
                "status_code" => {
                    for a in &c.args {
                        for part in a.text.split(',') {
                            if let Ok(v) = part.parse::<i64>() {
                                statuses.push(v.into());
                            } else if part.contains('-') {
                                statuses.push(part.into());
                            } else {
                                self.report.error(
                                    &a.pos,
                                    &join_path(&ctx, "status_code"),
                                    format!("{part:?} is not a status code"),
                                    Advice::Fix("200, or a range 200-299".into()),
                                );
                            }
                        }
                    }
                }
                "virtualhost" => {
                    if let Some(h) = self.string(c, &ctx, "a host name") {
                        emit::set_str(t, "host", h);
                    }
                }
                "regex" => {
                    if let Some(r) = self.string(c, &ctx, "a regular expression") {
                        emit::set_str(t, "body_regex", r);
                        self.report.note(c.pos(), &join_path(&ctx, "regex"), "a PCRE2 regular expression", Advice::Feature("body_regex uses Rust regex syntax (no look-around or backreferences)".into()));
                    }
                }
                _ => self.unmapped(c, &ctx),
            }
        }
        if !statuses.is_empty() {
            emit::set_array(t, "expect_status", statuses);
        }
    }
}

/// keepalived's hex payloads (`0a0b…`) as text, when they are printable.
fn hex_text(hex: &str) -> Option<String> {
    if hex.len() % 2 != 0 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect();
    let s = String::from_utf8(bytes).ok()?;
    s.chars()
        .all(|c| !c.is_control() || c == '\n' || c == '\r')
        .then_some(s)
}

// ----------------------------------------------------------------- driver

pub(crate) fn import(
    inputs: &[Input],
    source: &dyn Source,
    opts: &Options,
    out: &mut Emitter,
    report: &mut Report,
) {
    let mut ex = Expander {
        source,
        opts,
        vars: BTreeMap::new(),
        noted_ids: BTreeSet::new(),
        lines: Vec::new(),
    };
    for i in inputs {
        ex.expand(&i.name, &i.text, 0, report);
    }
    let toks = tokens(&ex.lines);
    let mut p = TreeParser { toks, i: 0 };
    let (nodes, _) = p.block(0, report);
    let mut m = Mapper {
        report,
        scripts: BTreeMap::new(),
        vsgroups: BTreeMap::new(),
        vrrp: GlobalVrrp {
            version: None,
            strict: false,
            garp_delay: 5000,
            garp_count: 5,
            garp_refresh: 0,
            garp_interval: 0,
        },
        instances: BTreeSet::new(),
        sync_daemon_done: false,
        sync_id_from: None,
        pending_groups: Vec::new(),
    };
    // Definitions first: keepalived reads the whole file before it acts.
    for n in &nodes {
        match n.k() {
            "global_defs" => m.global_defs(n, out),
            "vrrp_script" => m.vrrp_script(n),
            "virtual_server_group" => m.vs_group(n),
            _ => {}
        }
    }
    for n in &nodes {
        match n.k() {
            "global_defs" | "vrrp_script" | "virtual_server_group" => {}
            "vrrp_instance" => m.instance(n, out),
            "vrrp_sync_group" => m.sync_group(n),
            "virtual_server" => m.virtual_server(n, out),
            _ => m.unmapped(n, ""),
        }
    }
    let groups = std::mem::take(&mut m.pending_groups);
    for (mut t, members) in groups {
        let known: Vec<String> = members
            .iter()
            .filter(|(name, pos)| {
                let ok = m.instances.contains(name);
                if !ok {
                    m.report.unmapped(
                        pos,
                        "vrrp_sync_group.group",
                        format!(
                            "instance {name:?} was not imported (see above), or is not defined"
                        ),
                        Advice::None,
                    );
                }
                ok
            })
            .map(|x| x.0.clone())
            .collect();
        if known.is_empty() {
            continue;
        }
        emit::set_str_array(&mut t, "instances", &known);
        out.vrrp_sync_group(t);
    }
}

#[cfg(test)]
mod tests {
    use crate::{import, Format, Input, MemorySource, Options, Severity};

    fn run(
        text: &str,
        src: &MemorySource,
        opts: &Options,
    ) -> Result<crate::Imported, crate::Report> {
        import(
            Format::Keepalived,
            &[Input::new("/etc/keepalived/keepalived.conf", text)],
            src,
            opts,
        )
    }

    const INSTANCE: &str = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n priority 150\n \
                            advert_int 1\n authentication {\n  auth_type PASS\n  auth_pass 0123456789ab\n }\n \
                            virtual_ipaddress {\n  192.0.2.100/24 dev eth1 label eth1:vip\n  192.0.2.101\n }\n}\n";

    #[test]
    fn long_auth_pass_is_cut_to_what_keepalived_sends() {
        let out = run(INSTANCE, &MemorySource::default(), &Options::default()).unwrap();
        assert!(out.toml.contains("password = \"01234567\""), "{}", out.toml);
        let r = out.report.render();
        assert!(r.contains("keepalived.conf:8:3: note: vrrp_instance VI_1.authentication.auth_pass: a password of 12 bytes"), "{r}");
        assert!(
            out.toml.contains(
                "{ address = \"192.0.2.100/24\", interface = \"eth1\", label = \"eth1:vip\" }"
            ),
            "{}",
            out.toml
        );
        assert!(out.toml.contains("\"192.0.2.101/32\""), "{}", out.toml);
        let cfg = crate::check(&out.toml, "x.toml").unwrap();
        assert_eq!(cfg.vrrp_instances.len(), 1);
    }

    #[test]
    fn includes_globs_relative_paths_and_variables() {
        let src = MemorySource::default()
            .with("/etc/keepalived/conf.d/a.conf", "$VRID=51\n")
            .with("/etc/keepalived/conf.d/b.conf", "include ../vi.inc\n")
            .with(
                "/etc/keepalived/vi.inc",
                &INSTANCE.replace("virtual_router_id 51", "virtual_router_id $VRID"),
            );
        let out = run("include conf.d/*.conf\n", &src, &Options::default()).unwrap();
        assert!(out.toml.contains("virtual_router_id = 51"), "{}", out.toml);
        assert!(
            out.toml.contains("(from /etc/keepalived/vi.inc:1)"),
            "{}",
            out.toml
        );
        let e = run("include missing.conf\n", &src, &Options::default()).unwrap_err();
        assert!(e.render().starts_with("/etc/keepalived/keepalived.conf:1:1: error: include: cannot read \"/etc/keepalived/missing.conf\""), "{e}");
    }

    #[test]
    fn conditional_lines_follow_config_id() {
        let text = INSTANCE.replace(" priority 150\n", "@lb1 priority 150\n@^lb1 priority 100\n");
        let out = run(
            &text,
            &MemorySource::default(),
            &Options {
                config_id: Some("lb1".into()),
                ..Options::default()
            },
        )
        .unwrap();
        assert!(out.toml.contains("priority = 150"), "{}", out.toml);
        let out = run(
            &text,
            &MemorySource::default(),
            &Options {
                config_id: Some("lb2".into()),
                ..Options::default()
            },
        )
        .unwrap();
        assert!(out.toml.contains("priority = 100"), "{}", out.toml);
        let out = run(&text, &MemorySource::default(), &Options::default()).unwrap();
        assert!(out.toml.contains("priority = 100"), "{}", out.toml);
        assert!(
            out.report.render().contains("--config-id lb1"),
            "{}",
            out.report
        );
    }

    #[test]
    fn every_error_positioned_in_one_pass() {
        let text =
            "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 300\n priority high\n \
                    virtual_ipaddress {\n  192.0.2.300\n }\n}\n}\nvirtual_server 192.0.2.1 {\n";
        let e = run(text, &MemorySource::default(), &Options::default()).unwrap_err();
        let r = e.render();
        for want in [
            ":9:1: error: }: `}` closes no block",
            ":10:26: error: {: this `{` is never closed",
            ":3:20: error: vrrp_instance VI_1.virtual_router_id: \"300\" is not an integer 1..255",
            ":4:11: error: vrrp_instance VI_1.priority: \"high\" is not an integer 1..255",
            ":6:3: error: vrrp_instance VI_1.virtual_ipaddress: \"192.0.2.300\" is not an IP address",
            ":10:1: error: virtual_server 192.0.2.1: virtual_server needs IP PORT",
        ] {
            assert!(r.contains(want), "{want}\n{r}");
        }
        assert!(e
            .findings
            .iter()
            .all(|f| f.severity == Severity::Error && f.line > 0));
    }

    #[test]
    fn a_virtual_server_with_checkers() {
        let text = "global_defs {\n notification_email {\n  ops@example.com\n }\n smtp_server 192.0.2.25\n}\n\
            virtual_server 2001:db8::1 443 {\n delay_loop 10\n lb_algo wlc\n lb_kind DR\n persistence_timeout 600\n \
            inhibit_on_failure\n alpha\n quorum 2\n\
             real_server 2001:db8::11 443 {\n  weight 3\n  uthreshold 100\n  \
               SSL_GET {\n   url {\n    path /health\n    status_code 200-299\n   }\n   connect_timeout 2\n   retry 2\n  }\n  \
               TCP_CHECK {\n   connect_port 8443\n  }\n }\n\
             real_server 2001:db8::12 443 {\n  MISC_CHECK {\n   misc_path \"/usr/local/bin/chk.sh 2001:db8::12\"\n   misc_dynamic\n  }\n }\n}\n";
        let out = run(text, &MemorySource::default(), &Options::default()).unwrap();
        let cfg = crate::check(&out.toml, "x.toml")
            .unwrap_or_else(|e| panic!("{}\n{}", e.render(), out.toml));
        assert_eq!(cfg.services.len(), 1);
        assert_eq!(cfg.checks.len(), 2);
        insta::assert_snapshot!(out.toml);
        insta::assert_snapshot!(out.report.render());
    }
}

#[cfg(test)]
mod more_tests {
    use crate::{import, Format, Input, MemorySource, Options};

    fn run(text: &str) -> Result<crate::Imported, crate::Report> {
        import(
            Format::Keepalived,
            &[Input::new("k.conf", text)],
            &MemorySource::default(),
            &Options::default(),
        )
    }

    #[test]
    fn tabs_spaces_braces_on_the_next_line_and_quotes() {
        let text = "global_defs\n{\n\tlvs_timeouts tcp 900 tcpfin 120 udp 300\n\tvrrp_strict\n}\n\
            vrrp_script chk {\n\tscript \"/usr/bin/pidof haproxy\"\n  \tweight -20 # comment\n}\n\
            vrrp_instance VI_1\n{\n \tinterface eth0 ! a comment\n\tvirtual_router_id 7\n\tvirtual_ipaddress { 192.0.2.7/24 }\n\
            \ttrack_script {\n\t\tchk\n\t}\n\tnotify_master \"/etc/k/n.sh master now\"\n}\n\
            vrrp_sync_group G {\n group {\n  VI_1\n  VI_9\n }\n}\n";
        let out = run(text).unwrap();
        let cfg = crate::check(&out.toml, "x.toml")
            .unwrap_or_else(|e| panic!("{}\n{}", e.render(), out.toml));
        let vi = &cfg.vrrp_instances[0];
        assert!(!vi.accept, "vrrp_strict: no accept");
        assert_eq!(
            vi.track_script[0].command,
            vec!["/usr/bin/pidof", "haproxy"]
        );
        assert_eq!(vi.track_script[0].weight, -20);
        assert_eq!(
            vi.notify.master.as_deref(),
            Some(&["/etc/k/n.sh".to_owned(), "master".into(), "now".into()][..])
        );
        assert_eq!(
            cfg.global.ipvs.timeout_tcp,
            Some(std::time::Duration::from_secs(900))
        );
        assert_eq!(cfg.vrrp_sync_groups[0].instances, vec!["VI_1"]);
        let r = out.report.render();
        assert!(
            r.contains("k.conf:23:3: unmapped: vrrp_sync_group.group: instance \"VI_9\""),
            "{r}"
        );
    }

    #[test]
    fn master_without_priority_is_keepaliveds_owner() {
        let text = "vrrp_instance V {\n state MASTER\n interface eth0\n virtual_router_id 3\n virtual_ipaddress {\n  192.0.2.3\n }\n}\n";
        let out = run(text).unwrap();
        assert!(out.toml.contains("priority = 254"), "{}", out.toml);
        assert!(
            out.report.render().contains(
                "k.conf:2:2: note: vrrp_instance V.state: state MASTER without a priority"
            ),
            "{}",
            out.report
        );
        let out = run(&text.replace("MASTER", "BACKUP")).unwrap();
        assert!(out.toml.contains("priority = 100"), "{}", out.toml);
    }

    #[test]
    fn values_halb_refuses_are_errors_at_their_item() {
        let text = "global_defs {\n notification_email {\n  ops@example.com\n }\n notification_email_from \"A B@x\"\n}\n";
        let e = run(text).unwrap_err();
        assert!(e.render().starts_with("k.conf:1:1: error: global.alert.email_from: halb refuses the value imported from here"), "{e}");
    }

    #[test]
    fn groups_and_ranges_expand() {
        let text = "virtual_server_group G {\n 192.0.2.1-3 80\n fwmark 5\n}\n\
            virtual_server group G {\n lb_kind TUN\n protocol TCP\n real_server 198.51.100.1 80 {\n  TCP_CHECK {\n   connect_timeout 1\n  }\n }\n}\n";
        let out = run(text).unwrap();
        let cfg = crate::check(&out.toml, "x.toml")
            .unwrap_or_else(|e| panic!("{}\n{}", e.render(), out.toml));
        assert_eq!(cfg.services.len(), 4);
        assert_eq!(cfg.checks.len(), 4);
        let e = run("virtual_server_group G {\n 192.0.2.9-3 80\n}\n").unwrap_err();
        assert!(
            e.render()
                .contains("k.conf:2:2: error: virtual_server_group G: bad range"),
            "{e}"
        );
    }

    #[test]
    fn known_but_unmapped_and_unknown_keywords_differ() {
        let out = run("global_defs {\n enable_snmp_vrrp\n frobnicate 3\n}\n").unwrap();
        let r = out.report.render();
        assert!(
            r.contains("k.conf:2:2: unmapped: global_defs.enable_snmp_vrrp: SNMP or D-Bus"),
            "{r}"
        );
        assert!(r.contains("k.conf:3:2: unmapped: global_defs.frobnicate: not a keyword keepalived 2.2 reads here"), "{r}");
    }
}
