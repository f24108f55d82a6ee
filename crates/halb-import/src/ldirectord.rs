//! ldirectord.cf (ldirectord 4.12, Debian 12), read as ldirectord's own
//! `read_config` reads it: `KEY = VALUE` lines, a `virtual=` line opens a
//! block whose directives are indented by four columns or more (a tab
//! counts four), and the first line indented less (a blank line too) ends
//! it and is read as a global directive. Comments (`#` to the end of the
//! line) are dropped inside blocks as ldirectord drops them, quotes
//! included.
//!
//! A per-virtual directive found outside a block (pasted from a web page
//! without its indentation) is an error, as ldirectord refuses it, with
//! the fix; [`Options::fold_unindented`] imports it into the block above
//! instead (noted). A directive ldirectord takes both globally and per
//! virtual (`checktimeout`, `fallback`, `quiescent`, …) written
//! unindented right after a block is read as the global it is for
//! ldirectord, with a note.
//!
//! Every virtual service becomes a `data_plane = "ipvs"` service (as
//! ldirectord programs IPVS), its check a `check` table; host and service
//! names resolve through the hosts and services files ([`Names`]).

use crate::emit::{self, Emitter};
use crate::names::Names;
use crate::report::{Advice, Pos, Report};
use crate::{Input, Options, Source};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use toml_edit::Table;

/// Directives only a `virtual=` block takes.
const VIRTUAL_ONLY: &[&str] = &[
    "real",
    "real6",
    "request",
    "receive",
    "checktype",
    "checkcommand",
    "checkport",
    "login",
    "passwd",
    "database",
    "secret",
    "load",
    "scheduler",
    "persistent",
    "schedflags",
    "netmask",
    "protocol",
    "ops",
    "service",
    "httpmethod",
    "virtualhost",
    "monitorfile",
    "servicename",
    "comment",
];

/// Directives taken globally and per virtual (the block's wins).
const SHARED: &[&str] = &[
    "checktimeout",
    "negotiatetimeout",
    "checkcount",
    "failurecount",
    "checkinterval",
    "fallback",
    "fallback6",
    "fallbackcommand",
    "quiescent",
    "emailalert",
    "emailalertfreq",
    "emailalertstatus",
    "cleanstop",
    "smtp",
];

/// Directives only the global part takes.
const GLOBAL_ONLY: &[&str] = &[
    "autoreload",
    "callback",
    "logfile",
    "execute",
    "fork",
    "supervised",
    "readdquiescent",
    "emailalertfrom",
    "maintenancedir",
];

/// Values ldirectord reads only between double quotes.
const QUOTED: &[&str] = &[
    "request", "receive", "login", "passwd", "database", "secret",
];

/// The services halb has no probe for yet.
const UNSUPPORTED_SERVICES: &[&str] = &["http_proxy", "oracle", "sip"];

const SERVICES: &[&str] = &[
    "dns",
    "ftp",
    "http",
    "https",
    "http_proxy",
    "imap",
    "imaps",
    "ldap",
    "ldaps",
    "mysql",
    "nntp",
    "none",
    "oracle",
    "pgsql",
    "pop",
    "pops",
    "radius",
    "simpletcp",
    "sip",
    "smtp",
    "submission",
];

/// Most real servers one `A->B` range may give.
const MAX_RANGE: u32 = 4096;

/// One directive's value, where it was.
#[derive(Debug, Clone)]
struct Val {
    text: String,
    /// The key's position.
    pos: Pos,
}

/// One `virtual=` block.
#[derive(Debug)]
struct Virtual {
    head: Val,
    v6: bool,
    keys: BTreeMap<&'static str, Val>,
    reals: Vec<Val>,
}

/// ldirectord's column of a line's first non-blank character, a tab
/// counting four (`s/\t/    /g`), and the byte index where it starts.
fn indent(line: &str) -> (usize, usize) {
    let mut cols = 0;
    for (i, c) in line.char_indices() {
        match c {
            ' ' => cols += 1,
            '\t' => cols += 4,
            _ => return (cols, i),
        }
    }
    (cols, line.len())
}

fn canonical(key: &str) -> Option<&'static str> {
    VIRTUAL_ONLY
        .iter()
        .chain(SHARED)
        .chain(GLOBAL_ONLY)
        .chain(["virtual", "virtual6"].iter())
        .find(|k| **k == key)
        .copied()
}

fn is_virtual_only(k: &str) -> bool {
    VIRTUAL_ONLY.contains(&k)
}

fn is_shared(k: &str) -> bool {
    SHARED.contains(&k)
}

/// `"text"` → `text` (up to the last quote); other values as they are.
fn unquote(v: &str) -> &str {
    let v = v.trim();
    if let Some(rest) = v.strip_prefix('"') {
        match rest.rfind('"') {
            Some(end) => &rest[..end],
            None => rest,
        }
    } else {
        v
    }
}

/// The import of one or more ldirectord files (and the ones heartbeat's
/// `ldirectord::NAME` resources name): service names and listen addresses
/// are unique across them.
pub(crate) struct Ld<'a> {
    names: Names<'a>,
    fold: bool,
    used_names: BTreeSet<String>,
    listens: BTreeSet<String>,
    global_alert_done: bool,
}

impl<'a> Ld<'a> {
    pub(crate) fn new(source: &'a dyn Source, opts: &Options) -> Self {
        Ld {
            names: Names::new(source, opts),
            fold: opts.fold_unindented,
            used_names: BTreeSet::new(),
            listens: BTreeSet::new(),
            global_alert_done: false,
        }
    }

    /// Import one ldirectord config file; the number of virtual services
    /// written.
    pub(crate) fn file(
        &mut self,
        file: &str,
        text: &str,
        out: &mut Emitter,
        report: &mut Report,
    ) -> usize {
        let (globals, virtuals) = self.parse(file, text, report);
        self.globals(&globals, out, report);
        let mut n = 0;
        for v in &virtuals {
            if self.virtual_service(v, &globals, out, report) {
                n += 1;
            }
        }
        if virtuals.is_empty() {
            report.note(
                &Pos::file(file),
                "",
                "no virtual= block: ldirectord runs no service from this file",
                Advice::None,
            );
        }
        n
    }

    fn parse(
        &mut self,
        file: &str,
        text: &str,
        report: &mut Report,
    ) -> (BTreeMap<&'static str, Val>, Vec<Virtual>) {
        let mut globals: BTreeMap<&'static str, Val> = BTreeMap::new();
        let mut virtuals: Vec<Virtual> = Vec::new();
        let mut in_block = false;
        // The line before was a block's (or folded into one).
        let mut after_block = false;
        for (i, raw) in text.lines().enumerate() {
            let lineno = i + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let (cols, start) = indent(raw);
            let content = &raw[start..];
            if content.starts_with('#') {
                // Comment lines do not end a block.
                continue;
            }
            // ldirectord drops `#…` inside blocks (quotes included); a
            // global's regex ignores what follows its value.
            let body = content.split('#').next().unwrap_or("").trim_end();
            let just_ended = (in_block || after_block) && (cols < 4 || body.is_empty());
            after_block = false;
            if in_block && !just_ended {
                let pos = Pos::new(file, lineno, raw[..start].chars().count() + 1);
                if let Some(v) = virtuals.last_mut() {
                    Self::block_directive(v, body, &pos, report);
                }
                continue;
            }
            in_block = false;
            if body.is_empty() {
                continue;
            }
            let pos = Pos::new(file, lineno, raw[..start].chars().count() + 1);
            let Some((key, value)) = split_directive(body) else {
                if body == "supervised" && cols == 0 {
                    globals.insert(
                        "supervised",
                        Val {
                            text: "yes".into(),
                            pos,
                        },
                    );
                    continue;
                }
                report.error(
                    &pos,
                    "",
                    format!("not a KEY=VALUE directive: {body:?} (ldirectord refuses it)"),
                    Advice::Fix("write KEY=VALUE, or comment it out with #".into()),
                );
                continue;
            };
            let Some(k) =
                canonical(&key.to_ascii_lowercase()).filter(|_| key == key.to_ascii_lowercase())
            else {
                let fix = if key == "timeout" || key == "connecttimeout" {
                    "ldirectord 4 replaced it by checktimeout and negotiatetimeout".to_owned()
                } else {
                    "remove it (see ldirectord(8) for the directives)".to_owned()
                };
                report.error(
                    &pos,
                    key,
                    "not an ldirectord directive (ldirectord refuses the file: Unknown command)",
                    Advice::Fix(fix),
                );
                continue;
            };
            let val = Val {
                text: value.to_owned(),
                pos: pos.clone(),
            };
            if k == "virtual" || k == "virtual6" {
                if cols > 0 {
                    if self.fold && !virtuals.is_empty() {
                        report.note(&pos, k, "an indented virtual= line: ldirectord refuses it (a virtual= line starts at column 1); imported as a new block (--fold-unindented)", Advice::None);
                    } else {
                        report.error(
                            &pos,
                            k,
                            "an indented virtual= line: ldirectord reads virtual= only at column 1 and refuses this one",
                            Advice::Fix("start the line at column 1".into()),
                        );
                        continue;
                    }
                }
                virtuals.push(Virtual {
                    head: val,
                    v6: k == "virtual6",
                    keys: BTreeMap::new(),
                    reals: Vec::new(),
                });
                in_block = true;
                continue;
            }
            let foldable = is_virtual_only(k) || (is_shared(k) && cols > 0);
            if foldable {
                let why = if cols == 0 {
                    "unindented"
                } else if cols < 4 {
                    "indented by fewer than 4 columns"
                } else {
                    "after a blank line that ended the virtual= block"
                };
                match virtuals.last_mut() {
                    Some(v) if self.fold => {
                        report.note(&pos, k, format!("a per-virtual directive {why}: ldirectord ends the block above before it and refuses it; imported into the virtual= block of line {} (--fold-unindented)", v.head.pos.line), Advice::None);
                        Self::block_directive(v, body, &pos, report);
                        after_block = true;
                    }
                    Some(v) => report.error(
                        &pos,
                        k,
                        format!("a per-virtual directive {why}: ldirectord ends the virtual= block of line {} before this line and refuses it as a global (Unknown command)", v.head.pos.line),
                        Advice::Fix("indent it by 4 spaces or a tab under its virtual= line (and remove blank lines inside the block), or pass --fold-unindented to import it into the block above".into()),
                    ),
                    None => report.error(
                        &pos,
                        k,
                        "a per-virtual directive outside any virtual= block (ldirectord refuses it)",
                        Advice::Fix("put it under a virtual= line, indented by 4 spaces or a tab".into()),
                    ),
                }
                continue;
            }
            if cols > 0 {
                report.error(
                    &pos,
                    k,
                    "an indented global directive: ldirectord reads globals only at column 1 and refuses this one",
                    Advice::Fix("start the line at column 1".into()),
                );
                continue;
            }
            if is_shared(k) && just_ended {
                if let (true, Some(v)) = (self.fold, virtuals.last_mut()) {
                    report.note(&pos, k, format!("unindented right after the virtual= block of line {}: ldirectord reads it as a global for every service; imported into that block instead (--fold-unindented)", v.head.pos.line), Advice::None);
                    Self::block_directive(v, body, &pos, report);
                    after_block = true;
                    continue;
                }
                let above = virtuals.last().map(|v| v.head.pos.line).unwrap_or(0);
                report.note(&pos, k, format!("unindented right after the virtual= block of line {above}: ldirectord reads it as a global, for every service, and so does the import"), Advice::Fix("if it was meant for that block, indent it (or pass --fold-unindented)".into()));
            }
            if let Some(old) = globals.insert(k, val) {
                report.note(
                    &old.pos,
                    k,
                    format!("set again at line {}: the last one counts", pos.line),
                    Advice::None,
                );
            }
        }
        (globals, virtuals)
    }

    fn block_directive(v: &mut Virtual, body: &str, pos: &Pos, report: &mut Report) {
        let Some((key, value)) = split_directive(body) else {
            report.error(
                pos,
                "",
                format!("not a KEY=VALUE directive: {body:?} (ldirectord refuses it)"),
                Advice::Fix("write KEY=VALUE, or comment it out with #".into()),
            );
            return;
        };
        let k = match canonical(key) {
            Some(k) if is_virtual_only(k) || is_shared(k) => k,
            Some(k) => {
                report.error(
                    pos,
                    k,
                    "a global directive inside a virtual= block (ldirectord refuses it: Unknown command)",
                    Advice::Fix("move it out of the block, to column 1 before the first virtual= line".into()),
                );
                return;
            }
            None => {
                let fix = if key == "connecttimeout" {
                    "ldirectord 4 replaced it by negotiatetimeout".to_owned()
                } else {
                    "remove it (see ldirectord(8) for the directives of a virtual= block)"
                        .to_owned()
                };
                report.error(
                    pos,
                    key,
                    "not a directive of a virtual= block (ldirectord refuses the file: Unknown command)",
                    Advice::Fix(fix),
                );
                return;
            }
        };
        if QUOTED.contains(&k) {
            let t = value.trim();
            if !(t.starts_with('"') && t.len() >= 2 && t[1..].contains('"')) {
                report.error(
                    pos,
                    k,
                    "ldirectord reads this value only between double quotes (it refuses the line)",
                    Advice::Fix(format!("{k}=\"{}\"", t.trim_matches('"'))),
                );
                return;
            }
            if unquote(t).is_empty() {
                report.error(
                    pos,
                    k,
                    "an empty string (ldirectord refuses it)",
                    Advice::Fix("give a value, or remove the line".into()),
                );
                return;
            }
        }
        let val = Val {
            text: value.to_owned(),
            pos: pos.clone(),
        };
        if k == "real" || k == "real6" {
            if (k == "real6") != v.v6 {
                let want = if v.v6 { "real6" } else { "real" };
                report.error(
                    pos,
                    k,
                    format!(
                        "{k} in a {} block (ldirectord refuses it)",
                        if v.v6 { "virtual6" } else { "virtual" }
                    ),
                    Advice::Fix(format!("use {want}")),
                );
                return;
            }
            v.reals.push(val);
            return;
        }
        let k = if k == "fallback6" { "fallback" } else { k };
        if let Some(old) = v.keys.insert(k, val) {
            report.note(
                &old.pos,
                k,
                format!("set again at line {}: the last one counts", pos.line),
                Advice::None,
            );
        }
    }

    fn globals(&mut self, g: &BTreeMap<&'static str, Val>, out: &mut Emitter, report: &mut Report) {
        for (k, v) in g {
            let val = unquote(&v.text);
            match *k {
                // Read per service.
                "checktimeout" | "negotiatetimeout" | "checkinterval" | "failurecount"
                | "checkcount" | "quiescent" | "fallback" | "fallback6" | "fork" => {}
                "emailalert" | "emailalertfreq" | "emailalertstatus" | "smtp"
                | "emailalertfrom" => {}
                "autoreload" => report.unmapped(&v.pos, k, "reloads the file when it changes on disk", Advice::Feature("`halb reload` (or SIGHUP, or `systemctl reload halb`) after an edit: a path unit can do it on change".into())),
                "callback" => report.unmapped(&v.pos, k, "runs a program when the file changes", Advice::NotSupported),
                "logfile" => report.unmapped(&v.pos, k, format!("logs to {val}"), Advice::Feature("halb logs to standard error (the journal under systemd); --log-format json for files".into())),
                "execute" => report.unmapped(&v.pos, k, format!("starts another ldirectord for the configuration {val}"), Advice::Feature("import that file too: halb import ldirectord THIS.cf OTHER.cf (one halb runs every service)".into())),
                "supervised" => report.note(&v.pos, k, "stays in the foreground", Advice::Feature("halb always runs in the foreground (systemd's halb.service)".into())),
                "readdquiescent" => report.unmapped(&v.pos, k, "re-adds a quiescent real server removed by hand", Advice::Feature("halb puts right what was changed behind its back at each reload (docs/configuration.md, IPVS)".into())),
                "cleanstop" => report.unmapped(&v.pos, k, format!("{val}: whether the services are removed from the kernel when ldirectord stops"), Advice::NotSupported),
                "maintenancedir" => report.unmapped(&v.pos, k, "a file named after a real server forces it down", Advice::Feature("`halb disable SERVICE REAL` (or `halb drain`), kept across restarts".into())),
                "fallbackcommand" => report.unmapped(&v.pos, k, "runs a script when every real server of a service is down and when one comes back", Advice::Feature("an alert webhook, or notify scripts of the VRRP instance".into())),
                other => report.unmapped(&v.pos, other, "read but not carried over", Advice::None),
            }
        }
        if let Some(v) = g.get("fork") {
            if unquote(&v.text) == "yes" {
                report.note(&v.pos, "fork", "a process per virtual service", Advice::Feature("halb checks every service concurrently anyway; each service's checkinterval is honoured".into()));
            }
        }
        // Alerts: global e-mail settings.
        let email = g.get("emailalert");
        if let Some(e) = email {
            if !self.global_alert_done {
                let t = out.global_table(&["alert"], &e.pos, "emailalert");
                alert_keys(t, g, report, true);
            }
            self.global_alert_done = true;
        } else {
            for k in [
                "emailalertfrom",
                "smtp",
                "emailalertfreq",
                "emailalertstatus",
            ] {
                if let Some(v) = g.get(k) {
                    report.unmapped(
                        &v.pos,
                        k,
                        "no emailalert in this file: ldirectord sends no mail",
                        Advice::None,
                    );
                }
            }
        }
    }

    fn virtual_service(
        &mut self,
        v: &Virtual,
        g: &BTreeMap<&'static str, Val>,
        out: &mut Emitter,
        report: &mut Report,
    ) -> bool {
        let head = v.head.text.trim();
        let ctx = format!("virtual={head}");
        let get = |k: &str| -> Option<&Val> { v.keys.get(k).or_else(|| g.get(k)) };
        let mut used: BTreeSet<&str> = BTreeSet::new();
        // The address: IP:PORT, host:service, [v6]:port, or a mark.
        let spec = head.split_whitespace().next().unwrap_or("");
        if head.split_whitespace().nth(1).is_some() {
            report.unmapped(
                &v.head.pos,
                &ctx,
                "words after the address: ldirectord ignores them",
                Advice::None,
            );
        }
        let mut fwmark: Option<u32> = None;
        let mut host_port: Option<(String, String)> = None;
        if let Some(rest) = spec.strip_prefix('[') {
            match rest.split_once("]:") {
                Some((a, p)) if v.v6 => host_port = Some((a.to_owned(), p.to_owned())),
                _ => {
                    let fix = if v.v6 {
                        "virtual6=[2001:db8::1]:80"
                    } else {
                        "use virtual6= for an IPv6 address"
                    };
                    report.error(
                        &v.head.pos,
                        &ctx,
                        "not an address ldirectord takes",
                        Advice::Fix(fix.into()),
                    );
                    return false;
                }
            }
        } else if let Some((a, p)) = spec.rsplit_once(':') {
            if a.contains(':') || a.is_empty() || p.is_empty() {
                report.error(
                    &v.head.pos,
                    &ctx,
                    "not IP:PORT, HOST:SERVICE or a firewall mark",
                    Advice::Fix("virtual=192.0.2.1:80 (IPv6: virtual6=[2001:db8::1]:80)".into()),
                );
                return false;
            }
            host_port = Some((a.to_owned(), p.to_owned()));
        } else if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
            match spec.parse::<u32>() {
                Ok(m) if m > 0 => fwmark = Some(m),
                _ => {
                    report.error(
                        &v.head.pos,
                        &ctx,
                        "a firewall mark must be 1..4294967295",
                        Advice::Fix("virtual=1".into()),
                    );
                    return false;
                }
            }
        } else {
            report.error(
                &v.head.pos,
                &ctx,
                "not IP:PORT, HOST:SERVICE or a firewall mark (ldirectord refuses it)",
                Advice::Fix("virtual=192.0.2.1:80".into()),
            );
            return false;
        }
        // The protocol, as ldirectord decides it, then `protocol=`.
        let mut protocol = match &host_port {
            Some((_, p)) if p == "53" || p == "domain" => "udp",
            Some(_) => "tcp",
            None => "fwm",
        };
        if let Some(p) = v.keys.get("protocol") {
            used.insert("protocol");
            match (unquote(&p.text), fwmark.is_some()) {
                ("fwm", true) => {}
                ("tcp", false) => protocol = "tcp",
                ("udp", false) => protocol = "udp",
                (_, true) => {
                    report.error(
                        &p.pos,
                        "protocol",
                        "a firewall-mark service takes only protocol=fwm (ldirectord refuses this)",
                        Advice::Fix("protocol=fwm, or remove the line".into()),
                    );
                    return false;
                }
                (_, false) => {
                    report.error(&p.pos, "protocol", "protocol must be tcp or udp for an address and port (ldirectord refuses this)", Advice::Fix("protocol=tcp or protocol=udp".into()));
                    return false;
                }
            }
        }
        let mut listen: Option<SocketAddr> = None;
        let mut name_comment: Vec<String> = Vec::new();
        if let Some((h, p)) = &host_port {
            let ip = match self.names.host(h, v.v6) {
                Ok((ip, named)) => {
                    if named {
                        name_comment.push(format!("{h} is {ip} ({})", self.names.hosts_file()));
                    }
                    ip
                }
                Err(e) => {
                    report.error(&v.head.pos, &ctx, e, Advice::Fix("write the address, add the name to the hosts file, or pass --hosts FILE".into()));
                    return false;
                }
            };
            if ip.is_ipv6() != v.v6 {
                report.error(
                    &v.head.pos,
                    &ctx,
                    "an address of the other family (ldirectord refuses it)",
                    Advice::Fix("virtual= for IPv4, virtual6=[…]:port for IPv6".into()),
                );
                return false;
            }
            let port = match self.names.port(p, protocol) {
                Ok((0, _)) => {
                    report.error(
                        &v.head.pos,
                        &ctx,
                        "port 0",
                        Advice::Fix(
                            "give the service's port (or a firewall mark for every port)".into(),
                        ),
                    );
                    return false;
                }
                Ok((port, named)) => {
                    if named {
                        name_comment.push(format!("{p} is port {port}"));
                    }
                    port
                }
                Err(e) => {
                    report.error(
                        &v.head.pos,
                        &ctx,
                        e,
                        Advice::Fix("write the port number, or pass --services FILE".into()),
                    );
                    return false;
                }
            };
            listen = Some(SocketAddr::new(ip, port));
        }
        let vport = listen.map(|l| l.port());
        let what = match (&listen, fwmark) {
            (Some(l), _) if !name_comment.is_empty() => format!("{ctx}: {l}"),
            (_, Some(m)) => format!("{ctx} (firewall mark {m})"),
            _ => ctx.clone(),
        };
        let mut what = what;
        if let Some(c) = v.keys.get("comment") {
            used.insert("comment");
            what = format!("{what}: {}", unquote(&c.text));
        }
        let mut svc = emit::table(&v.head.pos, &what);
        // A name: servicename, unique; else halb's default.
        if let Some(sn) = v.keys.get("servicename") {
            used.insert("servicename");
            let base = unquote(&sn.text).trim().to_owned();
            if !base.is_empty() {
                let mut name = base.clone();
                let mut i = 2;
                while self.used_names.contains(&name) {
                    name = format!("{base} ({i})");
                    i += 1;
                }
                if name != base {
                    report.note(&sn.pos, "servicename", format!("used by another service: this one is named {name:?} (halb's names are unique)"), Advice::None);
                }
                self.used_names.insert(name.clone());
                emit::set_str(&mut svc, "name", name);
            }
        }
        emit::set_str(&mut svc, "data_plane", "ipvs");
        match (listen, fwmark) {
            (Some(l), _) => {
                let key = format!("{protocol}/{l}");
                if !self.listens.insert(key) {
                    report.error(&v.head.pos, &ctx, "the same address, port and protocol as a virtual service above (ldirectord refuses a duplicate virtual server)", Advice::Fix("merge the two blocks".into()));
                    return false;
                }
                emit::set_str(&mut svc, "listen", l.to_string());
                if !name_comment.is_empty() {
                    emit::key_comment(&mut svc, "listen", &name_comment.join(", "));
                }
                emit::set_str(&mut svc, "protocol", protocol);
            }
            (None, Some(m)) => {
                if !self.listens.insert(format!("fwm/{m}/{}", v.v6)) {
                    report.error(&v.head.pos, &ctx, "the same firewall mark as a virtual service above (ldirectord refuses a duplicate virtual server)", Advice::Fix("merge the two blocks".into()));
                    return false;
                }
                emit::set_int(&mut svc, "fwmark", i64::from(m));
            }
            _ => return false,
        }
        // Scheduling.
        let sched = match v.keys.get("scheduler") {
            Some(s) => {
                used.insert("scheduler");
                let t = unquote(&s.text);
                let word: String = t.chars().take_while(|c| c.is_ascii_lowercase()).collect();
                if word.is_empty() {
                    report.error(
                        &s.pos,
                        "scheduler",
                        "a scheduler is lowercase letters (ldirectord refuses this)",
                        Advice::Fix("scheduler=wrr".into()),
                    );
                    return false;
                }
                word
            }
            None => "wrr".to_owned(),
        };
        emit::set_str(&mut svc, "scheduler", &sched);
        if let Some(f) = v.keys.get("schedflags") {
            used.insert("schedflags");
            let mut flags = Vec::new();
            for fl in unquote(&f.text)
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                match fl {
                    "sh-fallback" | "mh-fallback" => flags.push("fallback"),
                    "sh-port" | "mh-port" => flags.push("port"),
                    other => report.unmapped(
                        &f.pos,
                        "schedflags",
                        format!("the scheduler flag {other}"),
                        Advice::NotSupported,
                    ),
                }
            }
            if !flags.is_empty() {
                emit::set_str_array(&mut svc, "scheduler_flags", &flags);
            }
        }
        let quiescent = get("quiescent");
        if v.keys.contains_key("quiescent") {
            used.insert("quiescent");
        }
        let on_down = match quiescent.map(|q| unquote(&q.text)) {
            Some("yes") => "quiescent",
            Some("no") | None => "remove",
            Some(other) => {
                let q = quiescent
                    .map(|q| q.pos.clone())
                    .unwrap_or_else(|| v.head.pos.clone());
                report.error(
                    &q,
                    "quiescent",
                    format!("quiescent must be yes or no, not {other:?} (ldirectord refuses it)"),
                    Advice::Fix("quiescent=yes".into()),
                );
                return false;
            }
        };
        emit::set_str(&mut svc, "on_down", on_down);
        if let Some(o) = v.keys.get("ops") {
            used.insert("ops");
            match unquote(&o.text) {
                "yes" if protocol == "udp" => emit::set_bool(&mut svc, "one_packet", true),
                "yes" => report.unmapped(
                    &o.pos,
                    "ops",
                    "one-packet scheduling, which ipvsadm takes for UDP services only",
                    Advice::Fix("remove it (halb refuses one_packet on TCP)".into()),
                ),
                "no" => {}
                other => {
                    report.error(
                        &o.pos,
                        "ops",
                        format!("ops must be yes or no, not {other:?}"),
                        Advice::Fix("ops=yes".into()),
                    );
                    return false;
                }
            }
        }
        // Persistence.
        if let Some(p) = v.keys.get("persistent") {
            used.insert("persistent");
            let t = unquote(&p.text);
            let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
            match digits.parse::<u64>() {
                Ok(0) | Err(_) => {
                    report.error(
                        &p.pos,
                        "persistent",
                        "persistent needs a number of seconds (ldirectord refuses this)",
                        Advice::Fix("persistent=600".into()),
                    );
                    return false;
                }
                Ok(secs) => {
                    let mut pt = Table::new();
                    emit::set_str(&mut pt, "timeout", emit::duration_ms(secs * 1000));
                    if let Some(nm) = v.keys.get("netmask") {
                        used.insert("netmask");
                        let t = unquote(&nm.text);
                        if v.v6 {
                            match t.parse::<i64>() {
                                Ok(n) if (1..=128).contains(&n) => {
                                    emit::set_int(&mut pt, "prefix_v6", n)
                                }
                                _ => {
                                    report.error(&nm.pos, "netmask", "an IPv6 netmask is a prefix length 1..128 (ldirectord refuses this)", Advice::Fix("netmask=64".into()));
                                    return false;
                                }
                            }
                        } else if t.parse::<Ipv4Addr>().is_ok() {
                            emit::set_str(&mut pt, "netmask", t);
                        } else {
                            report.error(
                                &nm.pos,
                                "netmask",
                                "an IPv4 netmask in dotted quad notation (ldirectord refuses this)",
                                Advice::Fix("netmask=255.255.255.0".into()),
                            );
                            return false;
                        }
                    }
                    emit::set_sub_table(&mut svc, "persistence", pt);
                }
            }
        } else if let Some(nm) = v.keys.get("netmask") {
            used.insert("netmask");
            report.unmapped(
                &nm.pos,
                "netmask",
                "a persistence netmask without persistent=: ipvsadm ignores it",
                Advice::None,
            );
        }
        // Fallback (the block's or the global one).
        let fb = v.keys.get("fallback").or_else(|| {
            if v.v6 {
                g.get("fallback6")
            } else {
                g.get("fallback")
            }
        });
        if let Some(f) = fb {
            used.insert("fallback");
            if let Some((addr, forward)) = self.fallback(f, v.v6, vport, report) {
                emit::set_str(&mut svc, "fallback", addr.to_string());
                emit::set_str(&mut svc, "fallback_forward", forward);
            }
        }
        for k in ["fallbackcommand", "monitorfile", "cleanstop", "load"] {
            if let Some(x) = v.keys.get(k) {
                used.insert(k);
                let (what, advice) = match k {
                    "fallbackcommand" => ("runs a script when every real server is down and when one comes back", Advice::Feature("an alert webhook".into())),
                    "monitorfile" => ("logs every check of this service to a file", Advice::Feature("halb logs each change with its reason; `halb list --json` shows the last probe".into())),
                    "cleanstop" => ("whether this service is removed from the kernel when ldirectord stops", Advice::NotSupported),
                    _ => ("an undocumented load-test string", Advice::NotSupported),
                };
                report.unmapped(&x.pos, k, what, advice);
            }
        }
        // Alerts of this service.
        let has_own_alert = ["emailalert", "emailalertfreq", "emailalertstatus", "smtp"]
            .iter()
            .any(|k| v.keys.contains_key(k));
        if has_own_alert {
            if let Some(e) = get("emailalert") {
                let mut t = emit::table(&e.pos, "emailalert");
                alert_keys(&mut t, &v.keys, report, false);
                emit::set_sub_table(&mut svc, "alert", t);
            } else {
                for k in ["emailalertfreq", "emailalertstatus", "smtp"] {
                    if let Some(x) = v.keys.get(k) {
                        report.unmapped(
                            &x.pos,
                            k,
                            "no emailalert for this service: ldirectord sends no mail",
                            Advice::None,
                        );
                    }
                }
            }
        }
        for k in ["emailalert", "emailalertfreq", "emailalertstatus", "smtp"] {
            used.insert(k);
        }
        // The check.
        let plan = self.check_plan(
            v,
            g,
            &ctx,
            protocol,
            vport,
            fwmark.is_some(),
            &mut used,
            report,
        );
        // Real servers.
        let mut seen: BTreeSet<SocketAddr> = BTreeSet::new();
        let mut reals = Vec::new();
        for r in &v.reals {
            match self.real(r, v.v6, vport, fwmark.is_some(), &ctx, report) {
                Some(list) => {
                    for (addr, t, rr) in list {
                        if Some(addr) == listen {
                            report.unmapped(&r.pos, "real", format!("{addr} is the virtual service's own address: left out (halb refuses a loop)"), Advice::None);
                            continue;
                        }
                        if !seen.insert(addr) {
                            report.note(
                                &r.pos,
                                "real",
                                format!("{addr} is listed twice: imported once"),
                                Advice::None,
                            );
                            continue;
                        }
                        reals.push((addr, t, rr, r.pos.clone()));
                    }
                }
                None => return false,
            }
        }
        let mut check_written = false;
        if let Some(mut check) = plan.table.clone() {
            let needs_port = !matches!(plan.ty, "icmp" | "external" | "on" | "off");
            let portless = reals.iter().any(|(a, _, _, _)| a.port() == 0);
            if needs_port && portless && !check.contains_key("port") {
                report.unmapped(
                    &plan.pos,
                    "checktype",
                    format!(
                        "a {} check of real servers without a port, without checkport",
                        plan.ty
                    ),
                    Advice::Fix(
                        "add checkport= (halb needs a port to probe): the check was left out"
                            .into(),
                    ),
                );
            } else {
                emit::origin(&mut check, &plan.pos, &plan.what);
                emit::set_sub_table(&mut svc, "check", check);
                check_written = true;
            }
        }
        if reals.is_empty() {
            report.note(&v.head.pos, &ctx, "no real server", Advice::None);
        }
        for (_, mut t, rr, pos) in reals {
            if let Some((req, recv)) = rr {
                if check_written {
                    if let Some(ct) = plan.per_real(&req, &recv, &pos, report) {
                        emit::set_sub_table(&mut t, "check", ct);
                    }
                } else {
                    report.unmapped(&pos, "real", "a request/receive pair for this real server's check: the service has no check in halb (above)", Advice::None);
                }
            }
            emit::push_real_server(&mut svc, t);
        }
        // Whatever the block set that nothing read.
        for (k, x) in &v.keys {
            if !used.contains(k) {
                report.unmapped(
                    &x.pos,
                    k,
                    format!(
                        "ldirectord does not use it for this service ({})",
                        plan.why_unused
                    ),
                    Advice::None,
                );
            }
        }
        out.virtual_service(svc);
        true
    }

    /// `fallback=HOST[:PORT] [gate|masq|ipip]` as ldirectord reads it: the
    /// port defaults to the virtual service's, the method to gate; it is
    /// added with weight 1 while no real server is up.
    fn fallback(
        &self,
        f: &Val,
        v6: bool,
        vport: Option<u16>,
        report: &mut Report,
    ) -> Option<(SocketAddr, &'static str)> {
        let text = unquote(&f.text).trim();
        let (spec, method) = match text.split_once(char::is_whitespace) {
            Some((a, m)) => (a, m.trim()),
            None => (text, ""),
        };
        let forward = match method {
            "" | "gate" => "route",
            "masq" => "masq",
            "ipip" => "tunnel",
            other => {
                report.error(&f.pos, "fallback", format!("the forwarding method must be gate, masq or ipip, not {other:?} (ldirectord refuses this)"), Advice::Fix("fallback=127.0.0.1:80 gate".into()));
                return None;
            }
        };
        // [v6]:port, host:port, or a host alone.
        let (host, port) = match spec.strip_prefix('[') {
            Some(rest) => match rest.split_once(']') {
                Some((a, tail)) => (a, tail.strip_prefix(':')),
                None => (spec, None),
            },
            None => match spec.rsplit_once(':') {
                Some((a, p)) if !a.contains(':') => (a, Some(p)),
                _ => (spec, None),
            },
        };
        let ip = match self.names.host(host, v6) {
            Ok((ip, _)) => ip,
            Err(e) => {
                report.error(
                    &f.pos,
                    "fallback",
                    e,
                    Advice::Fix(
                        "write the address, add the name to the hosts file, or pass --hosts FILE"
                            .into(),
                    ),
                );
                return None;
            }
        };
        let port = match port {
            Some(p) => match self.names.port(p, "") {
                Ok((p, _)) => p,
                Err(e) => {
                    report.error(
                        &f.pos,
                        "fallback",
                        e,
                        Advice::Fix("write the port number, or pass --services FILE".into()),
                    );
                    return None;
                }
            },
            None => vport.unwrap_or(0),
        };
        Some((SocketAddr::new(ip, port), forward))
    }

    /// The real servers of one `real=` line (several with a range): the
    /// address, its table, and a per-real request/receive pair.
    #[allow(clippy::type_complexity)]
    fn real(
        &mut self,
        r: &Val,
        v6: bool,
        vport: Option<u16>,
        fwm: bool,
        ctx: &str,
        report: &mut Report,
    ) -> Option<Vec<(SocketAddr, Table, Option<(String, String)>)>> {
        let text = r.text.trim();
        let (spec, flags) = match text.find(char::is_whitespace) {
            Some(i) => (&text[..i], text[i..].trim_start()),
            None => (text, ""),
        };
        let bad = |report: &mut Report, why: String, fix: &str| {
            report.error(&r.pos, "real", why, Advice::Fix(fix.to_owned()));
        };
        // ADDR[->ADDR][:PORT]
        let (addrs, port) = if v6 {
            let Some(rest) = spec.strip_prefix('[') else {
                bad(
                    report,
                    format!("{spec:?} is not [IPv6]:PORT"),
                    "real6=[2001:db8::2]:80 gate",
                );
                return None;
            };
            let Some((a, tail)) = rest.split_once(']') else {
                bad(
                    report,
                    format!("{spec:?} is not [IPv6]:PORT"),
                    "real6=[2001:db8::2]:80 gate",
                );
                return None;
            };
            if tail.starts_with("->") {
                bad(
                    report,
                    "an IPv6 range (ldirectord: not supported yet)".into(),
                    "one real6= line per address",
                );
                return None;
            }
            let port = match tail.strip_prefix(':') {
                Some(p) => p,
                None if tail.is_empty() => "0",
                None => {
                    bad(
                        report,
                        format!("{spec:?} is not [IPv6]:PORT"),
                        "real6=[2001:db8::2]:80 gate",
                    );
                    return None;
                }
            };
            ((a.to_owned(), None), port.to_owned())
        } else {
            let (range, port) = match spec.rsplit_once(':') {
                Some((a, p)) => (a, p),
                None => (spec, "0"),
            };
            if range.contains(':') || range.is_empty() || port.is_empty() {
                bad(report, format!("{spec:?} is not ADDRESS[->ADDRESS][:PORT] (ldirectord: invalid address for real server)"), "real=192.0.2.2:80 gate");
                return None;
            }
            match range.split_once("->") {
                Some((a, b)) => ((a.to_owned(), Some(b.to_owned())), port.to_owned()),
                None => ((range.to_owned(), None), port.to_owned()),
            }
        };
        let mut comments = Vec::new();
        let resolve = |name: &str,
                       comments: &mut Vec<String>,
                       report: &mut Report|
         -> Option<IpAddr> {
            match self.names.host(name, v6) {
                Ok((ip, named)) => {
                    if named {
                        comments.push(format!("{name} is {ip}"));
                    }
                    Some(ip)
                }
                Err(e) => {
                    report.error(&r.pos, "real", e, Advice::Fix("write the address, add the name to the hosts file, or pass --hosts FILE".into()));
                    None
                }
            }
        };
        let first = resolve(&addrs.0, &mut comments, report)?;
        let last = match &addrs.1 {
            Some(b) => Some(resolve(b, &mut comments, report)?),
            None => None,
        };
        let port = match self.names.port(&port, "") {
            Ok((p, named)) => {
                if named {
                    comments.push(format!("{port} is port {p}"));
                }
                p
            }
            Err(e) => {
                report.error(
                    &r.pos,
                    "real",
                    e,
                    Advice::Fix("write the port number, or pass --services FILE".into()),
                );
                return None;
            }
        };
        // Flags: gate|masq|ipip [weight] ["request", "receive"] [l:N] [u:N]
        let mut rest = flags;
        let method: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let forward = match method.as_str() {
            "gate" => "route",
            "masq" => "masq",
            "ipip" => "tunnel",
            _ => {
                bad(report, format!("the forwarding method must be gate, masq or ipip, not {method:?} (ldirectord refuses this)"), "real=192.0.2.2:80 gate");
                return None;
            }
        };
        rest = rest[method.len()..].trim_start();
        let mut weight: i64 = 1;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            weight = match digits.parse::<i64>() {
                Ok(w) if w <= 65535 => w,
                _ => {
                    bad(
                        report,
                        format!("weight {digits} is out of range"),
                        "a weight 0..65535",
                    );
                    return None;
                }
            };
            rest = rest[digits.len()..].trim_start();
        }
        let mut rr = None;
        if rest.starts_with('"') {
            // "request", "receive" (or a space between them).
            let parts: Vec<&str> = rest.splitn(5, '"').collect();
            if parts.len() < 5 || !matches!(parts[2].trim(), "," | "") {
                bad(
                    report,
                    "a request/receive pair is two quoted strings: \"request\", \"receive\"".into(),
                    "real=192.0.2.2:80 gate 1 \"/check.html\", \"OK\"",
                );
                return None;
            }
            rr = Some((parts[1].to_owned(), parts[3].to_owned()));
            rest = parts[4].trim_start();
        }
        let mut lower = None;
        let mut upper = None;
        for w in rest.split_whitespace() {
            let w = w
                .trim_matches('"')
                .trim_start_matches('<')
                .trim_end_matches('>');
            let (k, n) = match w.split_once(':') {
                Some((k, n)) if k == "l" || k == "u" => (k, n),
                _ => {
                    bad(report, format!("invalid real server line, around {w:?} (ldirectord refuses it)"), "real=ADDRESS:PORT gate|masq|ipip [WEIGHT] [\"REQUEST\", \"RECEIVE\"] [l:N] [u:N]");
                    return None;
                }
            };
            let Ok(n) = n.parse::<i64>() else {
                bad(
                    report,
                    format!("{w:?}: a threshold is a number of connections"),
                    "u:100",
                );
                return None;
            };
            if k == "l" {
                lower = Some(n);
            } else {
                upper = Some(n);
            }
        }
        let ips: Vec<IpAddr> = match (first, last) {
            (a, None) => vec![a],
            (IpAddr::V4(a), Some(IpAddr::V4(b))) => {
                let (a, b) = (u32::from(a), u32::from(b));
                if a > b {
                    bad(
                        report,
                        "a range whose first address is above its last (ldirectord refuses it)"
                            .into(),
                        "real=192.0.2.2->192.0.2.7:80 gate",
                    );
                    return None;
                }
                if b - a >= MAX_RANGE {
                    bad(
                        report,
                        format!(
                            "a range of {} addresses: the import takes at most {MAX_RANGE}",
                            u64::from(b - a) + 1
                        ),
                        "split it, or list the real servers",
                    );
                    return None;
                }
                (a..=b).map(|i| IpAddr::V4(Ipv4Addr::from(i))).collect()
            }
            _ => {
                bad(
                    report,
                    "an IPv6 range (ldirectord: not supported yet)".into(),
                    "one real6= line per address",
                );
                return None;
            }
        };
        // ldirectord gives a gate or ipip real server the virtual port.
        let real_port = match vport {
            Some(vp) if !fwm && (forward != "masq" || port == 0) => {
                if port != 0 && port != vp {
                    report.note(&r.pos, "real", format!("port {port} with {method}: the kernel sends to the virtual port {vp}, as ldirectord sets it (port mapping needs masq)"), Advice::None);
                }
                vp
            }
            _ => port,
        };
        let _ = ctx;
        let mut list = Vec::new();
        for ip in &ips {
            let addr = SocketAddr::new(*ip, real_port);
            let label = if ips.len() > 1 {
                format!("real={} ({addr})", r.text.trim())
            } else {
                format!("real={}", r.text.trim())
            };
            let mut t = emit::table(&r.pos, &label);
            emit::set_str(&mut t, "address", addr.to_string());
            if !comments.is_empty() {
                emit::key_comment(&mut t, "address", &comments.join(", "));
            }
            emit::set_int(&mut t, "weight", weight);
            emit::set_str(&mut t, "forward", forward);
            match (upper, lower) {
                (Some(u), l) => {
                    emit::set_int(&mut t, "upper_threshold", u);
                    if let Some(l) = l {
                        if l < u {
                            emit::set_int(&mut t, "lower_threshold", l);
                        } else {
                            report.unmapped(
                                &r.pos,
                                "real",
                                format!("l:{l} is not below u:{u}: left out"),
                                Advice::Fix("a lower threshold below the upper one".into()),
                            );
                        }
                    }
                }
                (None, Some(l)) => report.unmapped(
                    &r.pos,
                    "real",
                    format!("l:{l} without u:N"),
                    Advice::Key("lower_threshold needs upper_threshold".into()),
                ),
                (None, None) => {}
            }
            list.push((addr, t, rr.clone()));
        }
        Some(list)
    }

    #[allow(clippy::too_many_arguments)]
    fn check_plan<'v>(
        &self,
        v: &'v Virtual,
        g: &'v BTreeMap<&'static str, Val>,
        ctx: &str,
        protocol: &str,
        vport: Option<u16>,
        fwm: bool,
        used: &mut BTreeSet<&'v str>,
        report: &mut Report,
    ) -> Plan {
        let get = |k: &str| v.keys.get(k).or_else(|| g.get(k));
        let mut plan = Plan {
            table: None,
            ty: "",
            service: String::new(),
            pos: v.head.pos.clone(),
            what: String::new(),
            why_unused: String::new(),
        };
        let take = |k: &'v str, used: &mut BTreeSet<&'v str>| -> Option<&'v Val> {
            let x = v.keys.get_key_value(k)?;
            used.insert(x.0);
            Some(x.1)
        };
        for k in [
            "checktimeout",
            "negotiatetimeout",
            "checkinterval",
            "failurecount",
            "checkcount",
        ] {
            take(k, used);
        }
        // checktype
        let ct_val = take("checktype", used);
        let ct_text = ct_val
            .map(|c| unquote(&c.text).to_owned())
            .unwrap_or_else(|| "negotiate".into());
        let ct_pos = ct_val
            .map(|c| c.pos.clone())
            .unwrap_or_else(|| v.head.pos.clone());
        plan.pos = ct_pos.clone();
        let mut checktype = ct_text.as_str();
        if !checktype.is_empty() && checktype.bytes().all(|b| b.is_ascii_digit()) {
            report.note(&ct_pos, "checktype", format!("checktype={checktype}: ldirectord negotiates once every {checktype} connect checks"), Advice::Feature("halb negotiates at every check (stricter)".into()));
            checktype = "negotiate";
        }
        if !matches!(
            checktype,
            "negotiate" | "connect" | "ping" | "on" | "off" | "external" | "external-perl"
        ) {
            report.error(&ct_pos, "checktype", format!("checktype {checktype:?}: ldirectord takes connect, negotiate, on, off, ping, external, external-perl or a number"), Advice::Fix("checktype=negotiate".into()));
            return plan;
        }
        // service (with ldirectord's default from the port)
        let sv_val = take("service", used);
        let service = match sv_val {
            Some(s) => {
                let t = unquote(&s.text);
                let w: String = t
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !SERVICES.contains(&w.as_str()) {
                    report.error(
                        &s.pos,
                        "service",
                        format!("service {t:?}: ldirectord takes {}", SERVICES.join(", ")),
                        Advice::Fix("service=http".into()),
                    );
                    return plan;
                }
                w
            }
            None if fwm => "none".to_owned(),
            None => service_by_port(vport.unwrap_or(0)).to_owned(),
        };
        plan.service = service.clone();
        let interval_s = match get("checkinterval") {
            Some(ci)
                if v.keys.contains_key("checkinterval")
                    && !g.get("fork").is_some_and(|f| unquote(&f.text) == "yes") =>
            {
                let global = g
                    .get("checkinterval")
                    .map(|x| secs(&x.text))
                    .unwrap_or(Some(10))
                    .unwrap_or(10);
                report.note(&ci.pos, "checkinterval", format!("a per-virtual checkinterval: ldirectord honours it only with fork=yes and checks this service every {global}s; imported as written"), Advice::None);
                secs(&ci.text)
            }
            Some(ci) => secs(&ci.text),
            None => Some(10),
        };
        let Some(interval_s) = interval_s.filter(|s| *s > 0) else {
            let p = get("checkinterval")
                .map(|x| x.pos.clone())
                .unwrap_or_else(|| v.head.pos.clone());
            report.error(
                &p,
                "checkinterval",
                "checkinterval needs a number of seconds above 0 (ldirectord refuses it)",
                Advice::Fix("checkinterval=10".into()),
            );
            return plan;
        };
        let num = |k: &str, report: &mut Report| -> Option<Option<u64>> {
            match get(k) {
                None => Some(None),
                Some(x) => match secs(&x.text).filter(|n| *n > 0) {
                    Some(n) => Some(Some(n)),
                    None => {
                        report.error(
                            &x.pos,
                            k,
                            format!("{k} needs a whole number above 0 (ldirectord refuses it)"),
                            Advice::Fix(format!("{k}=5")),
                        );
                        None
                    }
                },
            }
        };
        let Some(ctimeout) = num("checktimeout", report) else {
            return plan;
        };
        let Some(ntimeout) = num("negotiatetimeout", report) else {
            return plan;
        };
        let Some(failurecount) = num("failurecount", report) else {
            return plan;
        };
        let Some(checkcount) = num("checkcount", report) else {
            return plan;
        };
        // The local value first, then the other local one, then the globals.
        let vlocal = |k: &str| v.keys.get(k).and_then(|x| secs(&x.text));
        let glocal = |k: &str| g.get(k).and_then(|x| secs(&x.text));
        let _ = (ctimeout, ntimeout);
        let connect_timeout = vlocal("checktimeout")
            .or_else(|| vlocal("negotiatetimeout"))
            .or_else(|| glocal("checktimeout"))
            .or_else(|| glocal("negotiatetimeout"))
            .unwrap_or(5);
        let negotiate_timeout = vlocal("negotiatetimeout")
            .or_else(|| vlocal("checktimeout"))
            .or_else(|| glocal("negotiatetimeout"))
            .or_else(|| glocal("checktimeout"))
            .unwrap_or(30);
        if let Some(cc) = checkcount.filter(|c| *c > 1) {
            let p = get("checkcount")
                .map(|x| x.pos.clone())
                .unwrap_or_else(|| v.head.pos.clone());
            report.unmapped(
                &p,
                "checkcount",
                format!("{cc} attempts within one ping check (deprecated in ldirectord)"),
                Advice::Key("fall (consecutive failed checks; failurecount)".into()),
            );
        }
        let mut t = Table::new();
        let (ty, timeout) = match checktype {
            "on" => ("on", None),
            "off" => ("off", None),
            "ping" => ("icmp", Some(connect_timeout)),
            "connect" if protocol == "udp" => {
                report.note(
                    &ct_pos,
                    "checktype",
                    "connect on a UDP service: ldirectord pings the real server",
                    Advice::Key("type = \"icmp\"".into()),
                );
                ("icmp", Some(connect_timeout))
            }
            "connect" => ("tcp", Some(connect_timeout)),
            "external" | "external-perl" => {
                let cmd = take("checkcommand", used)
                    .map(|c| (unquote(&c.text).to_owned(), c.pos.clone()));
                let (cmd, cpos) = cmd.unwrap_or_else(|| ("/bin/true".into(), ct_pos.clone()));
                let words: Vec<&str> = cmd.split_whitespace().collect();
                if words.is_empty() {
                    report.error(
                        &cpos,
                        "checkcommand",
                        "an empty command",
                        Advice::Fix("checkcommand=\"/usr/local/bin/check\"".into()),
                    );
                    return plan;
                }
                if cmd.contains(['|', '>', '<', '$', ';', '&', '`']) {
                    report.note(
                        &cpos,
                        "checkcommand",
                        "shell syntax: halb runs the command without a shell",
                        Advice::Fix("wrap it: sh -c '…'".into()),
                    );
                }
                if checktype == "external-perl" {
                    report.note(&ct_pos, "checktype", "external-perl: ldirectord evaluates the Perl script in its own process", Advice::Feature("halb runs it as a program (type = \"external\"): it needs a #!/usr/bin/perl line and the execute bit".into()));
                }
                emit::set_str_array(&mut t, "command", &words);
                ("external", Some(connect_timeout))
            }
            _ => match service.as_str() {
                "none" => ("on", None),
                "http" | "https" => ("http", Some(negotiate_timeout)),
                "dns" => ("dns", Some(negotiate_timeout)),
                "mysql" | "pgsql" => ("sql", Some(negotiate_timeout)),
                "smtp" => ("smtp", Some(negotiate_timeout)),
                "submission" => ("submission", Some(negotiate_timeout)),
                "ftp" => ("ftp", Some(negotiate_timeout)),
                "imap" => ("imap", Some(negotiate_timeout)),
                "imaps" => ("imaps", Some(negotiate_timeout)),
                "pop" => ("pop", Some(negotiate_timeout)),
                "pops" => ("pops", Some(negotiate_timeout)),
                "nntp" => ("nntp", Some(negotiate_timeout)),
                "ldap" => ("ldap", Some(negotiate_timeout)),
                "ldaps" => ("ldaps", Some(negotiate_timeout)),
                "radius" => ("radius", Some(negotiate_timeout)),
                "simpletcp" => ("simpletcp", Some(negotiate_timeout)),
                s if UNSUPPORTED_SERVICES.contains(&s) => {
                    let extra: Vec<&str> = [
                        "request",
                        "receive",
                        "login",
                        "passwd",
                        "database",
                        "secret",
                        "checkport",
                        "virtualhost",
                        "httpmethod",
                    ]
                    .into_iter()
                    .filter(|k| take(k, used).is_some())
                    .collect();
                    let with = if extra.is_empty() {
                        String::new()
                    } else {
                        format!(" (with {})", extra.join(", "))
                    };
                    report.unmapped(&sv_val.map(|s| s.pos.clone()).unwrap_or(ct_pos.clone()), "service", format!("ldirectord's {s} negotiate check{with} of {ctx}: halb has no {s} probe yet, so the check was left out and its real servers are not checked (always up); it was not replaced by a weaker check"), Advice::NotSupported);
                    plan.why_unused = format!("service {s}");
                    return plan;
                }
                _ => ("on", None),
            },
        };
        plan.why_unused = format!("checktype {checktype}, service {service}");
        let mut ty = ty;
        let request = take("request", used).map(|r| (unquote(&r.text).to_owned(), r.pos.clone()));
        let receive = take("receive", used).map(|r| (unquote(&r.text).to_owned(), r.pos.clone()));
        match ty {
            "http" => {
                let tls = service == "https";
                ty = if tls { "https" } else { "http" };
                emit::set_str(&mut t, "type", ty);
                if let Some(m) = take("httpmethod", used) {
                    let up = unquote(&m.text).to_ascii_uppercase();
                    match up.as_str() {
                        "GET" => {}
                        "HEAD" => emit::set_str(&mut t, "method", "HEAD"),
                        _ => {
                            report.error(
                                &m.pos,
                                "httpmethod",
                                "httpmethod must be GET or HEAD (ldirectord refuses it)",
                                Advice::Fix("httpmethod=GET".into()),
                            );
                            return plan;
                        }
                    }
                }
                if let Some((req, rpos)) = &request {
                    if let Some(p) = http_path(req, rpos, report) {
                        emit::set_str(&mut t, "path", p);
                    }
                }
                if let Some((recv, rpos)) = &receive {
                    if t.get("method").and_then(|m| m.as_str()) == Some("HEAD") {
                        report.unmapped(rpos, "receive", "a receive regex with httpmethod=HEAD (ldirectord: leave receive unset with HEAD)", Advice::Fix("halb checks only the status with HEAD: the regex was left out".into()));
                    } else {
                        emit::set_str(&mut t, "body_regex", recv);
                    }
                }
                if let Some(h) = take("virtualhost", used) {
                    emit::set_str(&mut t, "host", unquote(&h.text));
                }
            }
            "dns" => {
                emit::set_str(&mut t, "type", "dns");
                let name = request
                    .as_ref()
                    .map(|(r, _)| r.trim_start_matches('/').to_owned());
                match name {
                    Some(n) if n.parse::<IpAddr>().is_ok() => {
                        let p = request.as_ref().map(|r| r.1.clone()).unwrap_or(ct_pos.clone());
                        report.unmapped(&p, "request", format!("a PTR lookup of {n}: halb's dns check asks A, AAAA, NS, SOA, MX or TXT; the check was left out (real servers not checked)"), Advice::NotSupported);
                        return plan;
                    }
                    Some(n) if !n.is_empty() => {
                        emit::set_str(&mut t, "query_name", &n);
                        emit::set_str(&mut t, "query_type", "A");
                    }
                    _ => report.note(&ct_pos, "request", "no request: ldirectord asks for \"/\" (which fails); halb asks for the root's SOA", Advice::Key("query_name".into())),
                }
                match &receive {
                    Some((r, p)) => report.unmapped(p, "receive", format!("ldirectord is up only when an answer matches {r:?}; halb's dns check is up on any NOERROR answer"), Advice::NotSupported),
                    None => report.note(&ct_pos, "receive", "no receive: ldirectord's dns check then always fails; halb's is up on NOERROR", Advice::None),
                }
                if protocol == "tcp" {
                    report.note(&ct_pos, "protocol", "ldirectord asks over TCP for a TCP service; halb's dns check asks over UDP", Advice::None);
                }
            }
            "sql" => {
                ty = if service == "mysql" { "mysql" } else { "pgsql" };
                emit::set_str(&mut t, "type", ty);
                match take("login", used) {
                    Some(l) => emit::set_str(&mut t, "username", unquote(&l.text)),
                    None => report.note(&ct_pos, "login", format!("no login: ldirectord's {service} check needs one and fails; halb checks only the server's greeting"), Advice::Key("username".into())),
                }
                if t.contains_key("username") {
                    if let Some(p) = take("passwd", used) {
                        emit::set_str(&mut t, "password", unquote(&p.text));
                    }
                    if let Some(d) = take("database", used) {
                        emit::set_str(&mut t, "database", unquote(&d.text));
                    }
                    if let Some((q, qpos)) = &request {
                        let q = q.trim_start_matches('/');
                        if !q.is_empty() {
                            emit::set_str(&mut t, "query", q);
                            report.note(qpos, "request", "ldirectord is up when the query returns one row or more; halb when it succeeds (even with no row)", Advice::None);
                        }
                    }
                }
                if let Some((_, p)) = &receive {
                    report.unmapped(
                        p,
                        "receive",
                        format!("ldirectord does not use receive for {service}"),
                        Advice::None,
                    );
                }
            }
            "ftp" => {
                emit::set_str(&mut t, "type", "ftp");
                // ldirectord's defaults (anonymous, ldirectord@HOST) are
                // halb's too.
                if let Some(l) = take("login", used) {
                    emit::set_str(&mut t, "username", unquote(&l.text));
                }
                if let Some(p) = take("passwd", used) {
                    emit::set_str(&mut t, "password", unquote(&p.text));
                }
                if let Some((req, _)) = &request {
                    let f = req.trim_start_matches('/');
                    if !f.is_empty() {
                        emit::set_str(&mut t, "retrieve", f);
                    }
                }
                if let Some((recv, rpos)) = &receive {
                    if t.contains_key("retrieve") {
                        emit::set_str(&mut t, "expect_regex", recv);
                    } else {
                        report.unmapped(rpos, "receive", "a receive regex without a request file: ldirectord matches it against no file", Advice::None);
                    }
                }
            }
            "imap" | "imaps" | "pop" | "pops" => {
                emit::set_str(&mut t, "type", ty);
                if let Some(l) = take("login", used) {
                    emit::set_str(&mut t, "username", unquote(&l.text));
                    if let Some(p) = take("passwd", used) {
                        emit::set_str(&mut t, "password", unquote(&p.text));
                    }
                }
                unused_request_receive(report, &service, &request, &receive);
            }
            "ldap" | "ldaps" => {
                emit::set_str(&mut t, "type", ty);
                // ldirectord binds as login only when passwd is set too.
                match (take("login", used), take("passwd", used)) {
                    (Some(l), Some(p)) => {
                        emit::set_str(&mut t, "bind_dn", unquote(&l.text));
                        emit::set_str(&mut t, "password", unquote(&p.text));
                    }
                    (Some(x), None) | (None, Some(x)) => report.note(
                        &x.pos,
                        "login",
                        "login and passwd are used together only: ldirectord binds anonymously here, and so does halb",
                        Advice::Key("bind_dn and password".into()),
                    ),
                    (None, None) => {}
                }
                // ldirectord searches `request` less its leading "/",
                // "/" (the root DSE) by default, as halb does.
                if let Some((req, _)) = &request {
                    emit::set_str(&mut t, "search_base", ldap_base(req));
                }
                if let Some((recv, _)) = receive.as_ref().filter(|(r, _)| !r.is_empty()) {
                    emit::set_str(&mut t, "expect_regex", recv);
                }
            }
            "radius" => {
                emit::set_str(&mut t, "type", "radius");
                match take("secret", used) {
                    Some(sec) if !unquote(&sec.text).is_empty() => {
                        emit::set_str(&mut t, "secret", unquote(&sec.text));
                    }
                    other => {
                        let p = other.map(|x| x.pos.clone()).unwrap_or(ct_pos.clone());
                        report.unmapped(&p, "secret", format!("ldirectord's radius check of {ctx} without a secret: no RADIUS server answers it, so the check was left out (real servers not checked)"), Advice::Fix("secret=\"…\" (the client's secret in the server's clients.conf)".into()));
                        plan.why_unused = "service radius without a secret".into();
                        return plan;
                    }
                }
                if let Some(l) = take("login", used) {
                    emit::set_str(&mut t, "username", unquote(&l.text));
                }
                if let Some(p) = take("passwd", used) {
                    emit::set_str(&mut t, "password", unquote(&p.text));
                }
                unused_request_receive(report, "radius", &request, &receive);
            }
            "simpletcp" => {
                emit::set_str(&mut t, "type", "simpletcp");
                match &request {
                    Some((req, _)) => emit::set_str(&mut t, "send", req),
                    None => report.note(
                        &ct_pos,
                        "request",
                        "no request: ldirectord's simpletcp sends nothing and reads the reply",
                        Advice::Key("send".into()),
                    ),
                }
                if let Some((recv, _)) = &receive {
                    emit::set_str(&mut t, "expect_regex", recv);
                }
            }
            other => {
                emit::set_str(&mut t, "type", other);
                if let Some((_, p)) = &request {
                    report.unmapped(p, "request", format!("ldirectord does not send a request for checktype {checktype}, service {service}"), Advice::None);
                }
                if let Some((_, p)) = &receive {
                    report.unmapped(p, "receive", format!("ldirectord does not use receive for checktype {checktype}, service {service}"), Advice::None);
                }
            }
        }
        if !matches!(ty, "on" | "off" | "icmp" | "external") {
            if let Some(p) = take("checkport", used) {
                match unquote(&p.text).parse::<u16>() {
                    Ok(n) if n > 0 => emit::set_int(&mut t, "port", i64::from(n)),
                    _ => {
                        report.error(
                            &p.pos,
                            "checkport",
                            "checkport must be 1..65535 (ldirectord refuses it)",
                            Advice::Fix("checkport=80".into()),
                        );
                        return plan;
                    }
                }
            }
        }
        if let Some(timeout) = timeout {
            emit::set_str(&mut t, "interval", emit::duration_ms(interval_s * 1000));
            emit::set_str(&mut t, "timeout", emit::duration_ms(timeout * 1000));
            emit::set_int(&mut t, "fall", failurecount.unwrap_or(1).min(1000) as i64);
            emit::set_int(&mut t, "rise", 1);
        }
        plan.what = format!("checktype={checktype}, service={service}");
        plan.ty = ty;
        plan.table = Some(t);
        plan
    }
}

/// Reports `request` and `receive` where ldirectord's check of `service`
/// does not use them.
fn unused_request_receive(
    report: &mut Report,
    service: &str,
    request: &Option<(String, Pos)>,
    receive: &Option<(String, Pos)>,
) {
    for (what, v) in [("request", request), ("receive", receive)] {
        if let Some((_, p)) = v {
            report.unmapped(
                p,
                what,
                format!("ldirectord does not use {what} for service {service}"),
                Advice::None,
            );
        }
    }
}

/// The DN ldirectord's ldap check searches: the request less its first
/// "/" (the parser adds one when it is missing).
fn ldap_base(request: &str) -> &str {
    request.strip_prefix('/').unwrap_or(request)
}

/// The check a service gets, and how a real server's own request and
/// receive strings change it.
struct Plan {
    table: Option<Table>,
    /// halb's check type (`http`, `mysql`, …).
    ty: &'static str,
    service: String,
    pos: Pos,
    what: String,
    why_unused: String,
}

impl Plan {
    fn per_real(&self, req: &str, recv: &str, pos: &Pos, report: &mut Report) -> Option<Table> {
        let mut t = emit::table(pos, "the real server's request and receive");
        match self.ty {
            "http" | "https" => {
                if let Some(p) = http_path(req, pos, report) {
                    emit::set_str(&mut t, "path", p);
                }
                if !recv.is_empty() {
                    emit::set_str(&mut t, "body_regex", recv);
                }
            }
            "mysql" | "pgsql" => {
                let has_user = self
                    .table
                    .as_ref()
                    .is_some_and(|c| c.contains_key("username"));
                let q = req.trim_start_matches('/');
                if has_user && !q.is_empty() {
                    emit::set_str(&mut t, "query", q);
                } else {
                    report.unmapped(
                        pos,
                        "real",
                        "a request for a database check without login",
                        Advice::None,
                    );
                    return None;
                }
            }
            "ldap" | "ldaps" => {
                emit::set_str(&mut t, "search_base", ldap_base(req));
                if !recv.is_empty() {
                    emit::set_str(&mut t, "expect_regex", recv);
                }
            }
            "simpletcp" => {
                emit::set_str(&mut t, "send", req);
                if !recv.is_empty() {
                    emit::set_str(&mut t, "expect_regex", recv);
                }
            }
            "ftp" => {
                let f = req.trim_start_matches('/');
                if f.is_empty() {
                    report.unmapped(
                        pos,
                        "real",
                        "an empty request for this real server's ftp check",
                        Advice::None,
                    );
                    return None;
                }
                emit::set_str(&mut t, "retrieve", f);
                if !recv.is_empty() {
                    emit::set_str(&mut t, "expect_regex", recv);
                }
            }
            "dns" => {
                let q = req.trim_start_matches('/');
                if q.parse::<IpAddr>().is_ok() || q.is_empty() {
                    report.unmapped(
                        pos,
                        "real",
                        "a PTR or empty request for this real server's dns check",
                        Advice::NotSupported,
                    );
                    return None;
                }
                emit::set_str(&mut t, "query_name", q);
                if !recv.is_empty() {
                    report.unmapped(pos, "real", format!("ldirectord is up only when an answer matches {recv:?}; halb's dns check is up on any NOERROR answer"), Advice::NotSupported);
                }
            }
            other => {
                report.unmapped(
                    pos,
                    "real",
                    format!("a request/receive pair: ldirectord does not use it for service {} ({other} check)", self.service),
                    Advice::None,
                );
                return None;
            }
        }
        Some(t)
    }
}

/// ldirectord's request as an HTTP path (it adds a leading `/`).
fn http_path(req: &str, pos: &Pos, report: &mut Report) -> Option<String> {
    let r = req.trim_start_matches('/');
    if r.starts_with("http://") || r.starts_with("https://") {
        report.unmapped(
            pos,
            "request",
            format!("an absolute URL {r:?}: ldirectord fetches it from that host instead of the real server"),
            Advice::Fix("halb probes the real server: give a path, or a check `address`; the path of the URL was imported".into()),
        );
        let after = r.split_once("://").map(|x| x.1).unwrap_or("");
        return Some(match after.find('/') {
            Some(i) => after[i..].to_owned(),
            None => "/".to_owned(),
        });
    }
    Some(format!("/{r}"))
}

/// The alert keys of a global part (`global`: also `emailalertfrom`) or
/// of one block.
fn alert_keys(
    t: &mut Table,
    keys: &BTreeMap<&'static str, Val>,
    report: &mut Report,
    global: bool,
) {
    if let Some(e) = keys.get("emailalert") {
        let list: Vec<String> = unquote(&e.text)
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        emit::set_str_array(t, "email", &list);
    }
    if global {
        if let Some(f) = keys.get("emailalertfrom") {
            emit::set_str(t, "email_from", unquote(&f.text).trim());
        }
    }
    if let Some(s) = keys.get("smtp") {
        let host = unquote(&s.text).trim();
        emit::set_str(t, "smtp", format!("{host}:25"));
    } else if global {
        report.note(
            &keys
                .get("emailalert")
                .map(|e| e.pos.clone())
                .unwrap_or_else(|| Pos::file("")),
            "smtp",
            "no smtp=: ldirectord hands the mail to the local sendmail",
            Advice::Feature("halb sends to an SMTP server, 127.0.0.1:25 by default".into()),
        );
    }
    if let Some(f) = keys.get("emailalertfreq") {
        match secs(&f.text) {
            Some(n) => emit::set_str(t, "email_alert_freq", emit::duration_ms(n * 1000)),
            None => report.unmapped(
                &f.pos,
                "emailalertfreq",
                "not a number of seconds: ldirectord refuses it",
                Advice::Fix("emailalertfreq=3600".into()),
            ),
        }
    }
    if let Some(s) = keys.get("emailalertstatus") {
        emit::set_str(t, "email_alert_status", unquote(&s.text).trim());
    }
}

/// ldirectord's `(\d+)`: the leading digits of a value.
fn secs(text: &str) -> Option<u64> {
    let d: String = unquote(text)
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    d.parse().ok()
}

/// ldirectord's service for a virtual port (`ld_port_to_service`).
fn service_by_port(port: u16) -> &'static str {
    match port {
        21 => "ftp",
        25 => "smtp",
        53 => "dns",
        80 => "http",
        110 => "pop",
        119 => "nntp",
        143 => "imap",
        389 => "ldap",
        443 => "https",
        587 => "submission",
        636 => "ldaps",
        993 => "imaps",
        995 => "pops",
        1521 => "oracle",
        1812 => "radius",
        3128 => "http_proxy",
        3306 => "mysql",
        5432 => "pgsql",
        5060 => "sip",
        _ => "none",
    }
}

/// `KEY = VALUE` (spaces around `=` allowed, as ldirectord's `\s*=\s*`).
fn split_directive(body: &str) -> Option<(&str, &str)> {
    let end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(body.len());
    let key = &body[..end];
    let rest = body[end..].trim_start().strip_prefix('=')?;
    if key.is_empty() {
        return None;
    }
    Some((key, rest.trim()))
}

pub(crate) fn import(
    inputs: &[Input],
    source: &dyn Source,
    opts: &Options,
    out: &mut Emitter,
    report: &mut Report,
) {
    let mut ld = Ld::new(source, opts);
    for i in inputs {
        ld.file(&i.name, &i.text, out, report);
    }
}
