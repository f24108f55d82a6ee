//! heartbeat v1 (heartbeat 3.0, Debian 12): `ha.cf`, `haresources` and
//! `authkeys`, told apart by their names or, failing that, by their
//! content; an ldirectord config given with them (or named by an
//! `ldirectord::NAME` resource and read through the [`Source`]) is
//! imported as well.
//!
//! Each haresources line is a resource group that runs on one node at a
//! time, preferring the line's node. Its address resources (a bare IP,
//! `IPaddr::…`, `IPaddr2::…`, `IPv6addr::…`) become one VRRP instance
//! (this director's priority 150 on the lines that prefer it, else 100:
//! [`Options::node`] says which node this is); its other resources become
//! the members of a `[[resource_group]]` that follows that instance.
//! heartbeat's timings map to the instance's advert interval so that the
//! backup takes over after about `deadtime`, as heartbeat's did.

use crate::emit::{self, Emitter};
use crate::ldirectord::Ld;
use crate::report::{Advice, Pos, Report};
use crate::{Format, Input, Options, Source};
use std::collections::BTreeSet;
use std::net::IpAddr;
use toml_edit::{value, Value};

/// The scripts of Debian's heartbeat package in /etc/ha.d/resource.d (and
/// drbd-utils' drbddisk): a resource of one of these names is a
/// heartbeat-class agent.
const RESOURCE_D: &[&str] = &[
    "AudibleAlarm",
    "Delay",
    "Filesystem",
    "ICP",
    "IPaddr",
    "IPaddr2",
    "IPsrcaddr",
    "IPv6addr",
    "LVM",
    "LinuxSCSI",
    "MailTo",
    "OCF",
    "Raid1",
    "SendArp",
    "ServeRAID",
    "WAS",
    "WinPopup",
    "Xinetd",
    "apache",
    "db2",
    "hto-mapfuncs",
    "ids",
    "ldirectord",
    "portblock",
    "drbddisk",
];

/// This director's priority on the lines that prefer it, and the other's.
const PREFERRED: i64 = 150;
const OTHER: i64 = 100;

#[derive(Debug, Clone)]
struct Word {
    text: String,
    pos: Pos,
}

/// The words of each line that is not blank or a comment (`#` to the end
/// of the line), with their positions.
fn words(file: &str, text: &str) -> Vec<Vec<Word>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        let mut ws = Vec::new();
        let mut start: Option<usize> = None;
        let mut col = 0;
        let mut cur = String::new();
        for c in line.chars() {
            col += 1;
            if c.is_whitespace() {
                if let Some(s) = start.take() {
                    ws.push(Word {
                        text: std::mem::take(&mut cur),
                        pos: Pos::new(file, i + 1, s),
                    });
                }
            } else {
                if start.is_none() {
                    start = Some(col);
                }
                cur.push(c);
            }
        }
        if let Some(s) = start {
            ws.push(Word {
                text: cur,
                pos: Pos::new(file, i + 1, s),
            });
        }
        if !ws.is_empty() {
            out.push(ws);
        }
    }
    out
}

/// haresources' logical lines: a line ending in `\` goes on.
fn logical_lines(file: &str, text: &str) -> Vec<Vec<Word>> {
    let mut out: Vec<Vec<Word>> = Vec::new();
    let mut cont = false;
    for mut ws in words(file, text) {
        let goes_on = ws.last().is_some_and(|w| w.text.ends_with('\\'));
        if goes_on {
            if let Some(last) = ws.last_mut() {
                last.text.pop();
                if last.text.is_empty() {
                    ws.pop();
                }
            }
        }
        match (cont, out.last_mut()) {
            (true, Some(prev)) => prev.extend(ws),
            _ => out.push(ws),
        }
        cont = goes_on;
    }
    out.retain(|l| !l.is_empty());
    out
}

const HA_CF_KEYS: &[&str] = &[
    "node",
    "keepalive",
    "deadtime",
    "warntime",
    "initdead",
    "udpport",
    "bcast",
    "mcast",
    "mcast6",
    "ucast",
    "serial",
    "baud",
    "auto_failback",
    "nice_failback",
    "ping",
    "ping_group",
    "respawn",
    "logfile",
    "logfacility",
    "debugfile",
    "debug",
    "use_logd",
    "crm",
    "pacemaker",
    "stonith",
    "stonith_host",
    "watchdog",
    "apiauth",
    "autojoin",
    "hopfudge",
    "deadping",
    "hbgenmethod",
    "realtime",
    "rtprio",
    "msgfmt",
    "compression",
    "compression_threshold",
    "traditional_compression",
    "conn_logd_time",
    "coredumps",
    "max_rexmit_delay",
    "uuidfrom",
    "hbaping",
    "crm_daemon_dir",
    "crmd_spawns_pengine",
    "keepalive_timeout",
    "register_to_apphbd",
    "syslogmsgfmt",
    "gshutdown",
    "record_config_changes",
    "record_pengine_inputs",
    "enable_config_writes",
    "memreserve",
    "quorum_server",
    "env",
];

/// Which file is which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    HaCf,
    Haresources,
    Authkeys,
    Ldirectord,
}

fn kind_of(i: &Input) -> Option<Kind> {
    let base = i.name.rsplit('/').next().unwrap_or(&i.name);
    match base {
        "ha.cf" => return Some(Kind::HaCf),
        "haresources" => return Some(Kind::Haresources),
        "authkeys" => return Some(Kind::Authkeys),
        "ldirectord.cf" => return Some(Kind::Ldirectord),
        _ => {}
    }
    let first = words(&i.name, &i.text).into_iter().next()?;
    let w = first[0].text.as_str();
    if w == "auth" {
        return Some(Kind::Authkeys);
    }
    if HA_CF_KEYS.contains(&w) {
        return Some(Kind::HaCf);
    }
    if crate::guess_format(&i.text) == Some(Format::Ldirectord) {
        return Some(Kind::Ldirectord);
    }
    Some(Kind::Haresources)
}

/// heartbeat's time syntax: seconds (`2`, `0.5`) or milliseconds
/// (`1500ms`), also `Ns`. In milliseconds.
fn hb_ms(s: &str) -> Option<u64> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (s, 1000.0)
    };
    let v: f64 = num.parse().ok()?;
    if !v.is_finite() || !(0.0..=1e9).contains(&v) {
        return None;
    }
    Some((v * scale).round() as u64)
}

fn bool_word(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "y" | "1" => Some(true),
        "false" | "off" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// What ha.cf set that the VRRP instances take.
#[derive(Debug, Default)]
struct HaCf {
    nodes: Vec<Word>,
    keepalive: Option<(u64, Pos)>,
    deadtime: Option<(u64, Pos)>,
    initdead: Option<(u64, Pos)>,
    /// The first heartbeat medium's interface.
    interface: Option<Word>,
    ucast: Vec<(IpAddr, Pos, String)>,
    /// A bcast or mcast line: VRRP stays multicast.
    multicast: bool,
    /// None: legacy (the default).
    auto_failback: Option<(bool, Pos)>,
    ping: Vec<(String, Pos)>,
    ipfail: bool,
}

/// The active authkeys method.
#[derive(Debug)]
enum Auth {
    Crc(Pos),
    Hmac {
        method: String,
        key: String,
        pos: Pos,
    },
}

struct Ctx<'r> {
    report: &'r mut Report,
}

impl Ctx<'_> {
    fn ha_cf(&mut self, i: &Input) -> HaCf {
        let mut h = HaCf::default();
        let mut respawns: Vec<Vec<Word>> = Vec::new();
        let mut pings: Vec<Vec<Word>> = Vec::new();
        let mut media = 0;
        for line in words(&i.name, &i.text) {
            let key = &line[0];
            let args = &line[1..];
            let k = key.text.as_str();
            let pos = &key.pos;
            let need = |s: &mut Self, n: usize, fix: &str| -> bool {
                if args.len() < n {
                    s.report.error(
                        pos,
                        k,
                        format!("{k} needs {n} argument{}", if n == 1 { "" } else { "s" }),
                        Advice::Fix(fix.into()),
                    );
                    false
                } else {
                    true
                }
            };
            match k {
                "node" => {
                    if need(self, 1, "node NAME (uname -n of each director)") {
                        h.nodes.extend(args.iter().cloned());
                    }
                }
                "keepalive" | "deadtime" | "initdead" | "warntime" => {
                    if !need(self, 1, &format!("{k} 2")) {
                        continue;
                    }
                    let Some(ms) = hb_ms(&args[0].text).filter(|ms| *ms > 0) else {
                        self.report.error(&args[0].pos, k, format!("{:?} is not a time (heartbeat: seconds, or 1500ms)", args[0].text), Advice::Fix(format!("{k} 2")));
                        continue;
                    };
                    let slot = (ms, pos.clone());
                    match k {
                        "keepalive" => h.keepalive = Some(slot),
                        "deadtime" => h.deadtime = Some(slot),
                        "initdead" => h.initdead = Some(slot),
                        _ => self.report.unmapped(pos, k, format!("a \"late heartbeat\" warning after {}", emit::duration_ms(ms)), Advice::NotSupported),
                    }
                }
                "udpport" => self.report.note(pos, k, "the UDP port of heartbeat's packets", Advice::Feature("VRRP is IP protocol 112 (multicast 224.0.0.18 / ff02::12): no port; open protocol 112 between the directors".into())),
                "bcast" | "mcast" | "mcast6" | "ucast" => {
                    media += 1;
                    if k != "ucast" {
                        h.multicast = true;
                    }
                    if !need(self, 1, &format!("{k} eth0")) {
                        continue;
                    }
                    if h.interface.is_none() {
                        h.interface = Some(args[0].clone());
                    } else if k != "ucast" && h.interface.as_ref().is_some_and(|w| w.text != args[0].text) {
                        self.report.unmapped(&args[0].pos, k, format!("a further heartbeat path over {}", args[0].text), Advice::Feature("each VRRP instance speaks on one interface (its `interface`)".into()));
                    }
                    match k {
                        "bcast" => {
                            for extra in &args[1..] {
                                self.report.unmapped(&extra.pos, k, format!("a further heartbeat path over {}", extra.text), Advice::Feature("each VRRP instance speaks on one interface (its `interface`)".into()));
                            }
                            self.report.note(pos, k, "broadcast heartbeats", Advice::Feature("VRRP adverts to the multicast group 224.0.0.18 on that interface".into()));
                        }
                        "mcast" | "mcast6" => self.report.note(pos, k, format!("multicast heartbeats{}", args.get(1).map(|g| format!(" to {}", g.text)).unwrap_or_default()), Advice::Feature("VRRP adverts to 224.0.0.18 (ff02::12) on that interface: the group, port, ttl and loop are not used".into())),
                        _ => {
                            if !need(self, 2, "ucast eth0 192.0.2.2") {
                                continue;
                            }
                            match args[1].text.parse::<IpAddr>() {
                                Ok(ip) => h.ucast.push((ip, args[1].pos.clone(), args[0].text.clone())),
                                Err(_) => self.report.error(&args[1].pos, k, format!("{:?} is not an IP address", args[1].text), Advice::Fix("ucast eth0 192.0.2.2".into())),
                            }
                        }
                    }
                }
                "serial" | "baud" => self.report.unmapped(pos, k, if k == "serial" { "heartbeats over a serial line" } else { "the serial line's speed" }, Advice::Feature("none: halb's VRRP runs over IP only (use a second network path)".into())),
                "auto_failback" | "nice_failback" => {
                    if !need(self, 1, "auto_failback on") {
                        continue;
                    }
                    let v = args[0].text.to_ascii_lowercase();
                    let b = match (k, v.as_str()) {
                        (_, "legacy") => {
                            self.report.note(pos, k, "legacy: fails back to the preferred node", Advice::Key("preempt = true".into()));
                            Some(true)
                        }
                        ("nice_failback", _) => bool_word(&v).map(|b| !b),
                        _ => bool_word(&v),
                    };
                    match b {
                        Some(b) => h.auto_failback = Some((b, pos.clone())),
                        None => self.report.error(&args[0].pos, k, format!("{:?}: on, off or legacy", args[0].text), Advice::Fix("auto_failback on".into())),
                    }
                }
                "ping" => {
                    if need(self, 1, "ping 192.0.2.254") {
                        pings.push(line.clone());
                    }
                }
                "ping_group" => {
                    if need(self, 2, "ping_group group1 192.0.2.253 192.0.2.254") {
                        pings.push(line.clone());
                    }
                }
                "respawn" => {
                    if !need(self, 2, "respawn hacluster /usr/lib/heartbeat/ipfail") {
                        continue;
                    }
                    respawns.push(line.clone());
                }
                "logfile" | "debugfile" | "logfacility" | "use_logd" | "debug" | "syslogmsgfmt" | "conn_logd_time" => self.report.unmapped(pos, k, format!("heartbeat's logging ({})", args.iter().map(|a| a.text.as_str()).collect::<Vec<_>>().join(" ")), Advice::Feature("halb logs to standard error, the journal under systemd (--log-format json)".into())),
                "crm" | "pacemaker" => {
                    let on = args.first().map(|a| a.text.to_ascii_lowercase());
                    match on.as_deref() {
                        Some("off") | Some("no") | Some("false") | Some("0") => {}
                        _ => self.report.unmapped(pos, k, "heartbeat runs Pacemaker and ignores haresources (the resources are in the CIB)", Advice::Feature("halb import pacemaker reads the CIB (not implemented yet); haresources was imported as given".into())),
                    }
                }
                "stonith" | "stonith_host" => self.report.unmapped(pos, k, "fences a node through a STONITH device", Advice::NotSupported),
                "watchdog" => self.report.unmapped(pos, k, "reboots the node when heartbeat stops", Advice::Feature("systemd's WatchdogSec= for halb.service".into())),
                "apiauth" => self.report.unmapped(pos, k, "who may use heartbeat's client API", Advice::Feature("the control socket's groups (control_socket_group, control_socket_read_group)".into())),
                "autojoin" => self.report.unmapped(pos, k, "nodes joining without a node line", Advice::Feature("VRRP needs no membership: any director with the VRID and auth takes part".into())),
                "deadping" => self.report.unmapped(pos, k, "the dead time of ping nodes", Advice::Key("track_ping timeout, fall".into())),
                _ if HA_CF_KEYS.contains(&k) => self.report.unmapped(pos, k, "an internal of heartbeat's cluster messaging", Advice::Feature("none needed: VRRP has no such setting".into())),
                _ => self.report.error(pos, k, "not a heartbeat ha.cf directive (heartbeat refuses the file: Illegal directive)", Advice::Fix("see ha.cf(5); remove it".into())),
            }
        }
        for r in &respawns {
            let cmd = &r[2..];
            if cmd[0].text.ends_with("/ipfail") {
                h.ipfail = true;
                continue;
            }
            let line: Vec<&str> = cmd.iter().map(|w| w.text.as_str()).collect();
            self.report.unmapped(
                &r[0].pos,
                "respawn",
                format!("runs {} as {} and restarts it", line.join(" "), r[1].text),
                Advice::Feature("a systemd service with Restart=always".into()),
            );
        }
        for p in &pings {
            let hosts: Vec<&Word> = if p[0].text == "ping" {
                p[1..].iter().collect()
            } else {
                p[2..].iter().collect()
            };
            if h.ipfail {
                for w in hosts {
                    h.ping.push((w.text.clone(), w.pos.clone()));
                }
                self.report.note(&p[0].pos, &p[0].text, "ping nodes: with ipfail the node that reaches fewer of them gives the resources up", Advice::Feature("track_ping: a director that reaches none of the hosts goes to Fault and the peer takes over".into()));
            } else {
                self.report.unmapped(
                    &p[0].pos,
                    &p[0].text,
                    "ping nodes without ipfail: heartbeat only reports their state",
                    Advice::Key("track_ping (with ipfail's meaning: none reached is Fault)".into()),
                );
            }
        }
        if h.multicast {
            for (ip, pos, dev) in std::mem::take(&mut h.ucast) {
                self.report.unmapped(&pos, "ucast", format!("unicast heartbeats to {ip} over {dev} beside the broadcast or multicast ones"), Advice::Feature("VRRP uses one path: multicast here (unicast_peers would replace it)".into()));
            }
        }
        if media == 0 && !h.nodes.is_empty() {
            self.report.note(
                &Pos::file(&i.name),
                "",
                "no bcast, mcast, ucast or serial line: heartbeat would not start",
                Advice::Feature("VRRP adverts on each instance's interface".into()),
            );
        }
        h
    }

    fn authkeys(&mut self, i: &Input) -> Option<Auth> {
        let lines = words(&i.name, &i.text);
        let mut active: Option<&Word> = None;
        let mut methods: Vec<(&Word, &Word, Option<&Word>)> = Vec::new();
        for l in &lines {
            if l[0].text == "auth" {
                match l.get(1) {
                    Some(n) if active.is_none() => active = Some(n),
                    Some(_) => self.report.error(
                        &l[0].pos,
                        "auth",
                        "a second auth line",
                        Advice::Fix("keep one `auth N` line".into()),
                    ),
                    None => self.report.error(
                        &l[0].pos,
                        "auth",
                        "auth needs a method number",
                        Advice::Fix("auth 1".into()),
                    ),
                }
                continue;
            }
            let Some(m) = l.get(1) else {
                self.report.error(
                    &l[0].pos,
                    "",
                    "a key line is `N METHOD [KEY]`",
                    Advice::Fix("1 sha1 SECRET".into()),
                );
                continue;
            };
            if !matches!(m.text.as_str(), "crc" | "md5" | "sha1") {
                self.report.error(
                    &m.pos,
                    &l[0].text,
                    format!("{:?} is not crc, md5 or sha1", m.text),
                    Advice::Fix("1 sha1 SECRET".into()),
                );
                continue;
            }
            if m.text != "crc" && l.len() < 3 {
                self.report.error(
                    &m.pos,
                    &l[0].text,
                    format!("{} needs a key", m.text),
                    Advice::Fix(format!("{} {} SECRET", l[0].text, m.text)),
                );
                continue;
            }
            methods.push((&l[0], m, l.get(2)));
        }
        let Some(n) = active else {
            if !lines.is_empty() {
                self.report.error(
                    &lines[0][0].pos,
                    "auth",
                    "no `auth N` line (heartbeat refuses the file)",
                    Advice::Fix("auth 1".into()),
                );
            }
            return None;
        };
        let mut found = None;
        for (id, m, key) in &methods {
            if id.text == n.text {
                found = Some(match key {
                    Some(k) if m.text != "crc" => Auth::Hmac {
                        method: m.text.clone(),
                        key: k.text.clone(),
                        pos: m.pos.clone(),
                    },
                    _ => Auth::Crc(m.pos.clone()),
                });
            } else {
                self.report.note(
                    &id.pos,
                    &id.text,
                    format!(
                        "method {} ({}): heartbeat accepts it but sends with auth {}",
                        id.text, m.text, n.text
                    ),
                    Advice::Feature("one auth per VRRP instance: not imported".into()),
                );
            }
        }
        if found.is_none() {
            self.report.error(
                &n.pos,
                "auth",
                format!("auth {} names no key line", n.text),
                Advice::Fix(format!("add `{} sha1 SECRET`", n.text)),
            );
        }
        found
    }
}

struct Resource<'w> {
    word: &'w Word,
    name: String,
    args: Vec<String>,
}

/// `IP[/PREFIX[/DEV[/BCAST]]]`: the address, its prefix (None: the
/// route's), the interface.
type Vip = (IpAddr, Option<u8>, Option<String>);

fn parse_vip(arg: &str) -> Result<Vip, String> {
    let mut parts = arg.split('/');
    let ip_s = parts.next().unwrap_or("");
    let ip: IpAddr = ip_s
        .parse()
        .map_err(|_| format!("{ip_s:?} is not an IP address"))?;
    let max = if ip.is_ipv6() { 128 } else { 32 };
    let mut prefix = None;
    let mut dev = None;
    if let Some(p) = parts.next().filter(|p| !p.is_empty()) {
        if let Ok(n) = p.parse::<u8>() {
            if n > max {
                return Err(format!("prefix /{n} is above {max}"));
            }
            prefix = Some(n);
        } else if let Ok(std::net::IpAddr::V4(m)) = p.parse::<IpAddr>() {
            let bits = u32::from(m);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(format!("netmask {p} is not contiguous"));
            }
            prefix = Some(bits.leading_ones() as u8);
        } else {
            // heartbeat allows IP/DEV too.
            dev = Some(p.to_owned());
        }
    }
    if dev.is_none() {
        if let Some(d) = parts.next().filter(|d| !d.is_empty()) {
            dev = Some(d.to_owned());
        }
    }
    Ok((ip, prefix, dev))
}

fn member_name(base: &str, used: &mut BTreeSet<String>) -> String {
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = clean.clone();
    let mut n = 2;
    while !used.insert(name.clone()) {
        name = format!("{clean}-{n}");
        n += 1;
    }
    name
}

pub(crate) fn import(
    inputs: &[Input],
    source: &dyn Source,
    opts: &Options,
    out: &mut Emitter,
    report: &mut Report,
) {
    let mut ha_cf: Option<&Input> = None;
    let mut haresources: Option<&Input> = None;
    let mut authkeys: Option<&Input> = None;
    let mut ld_inputs: Vec<&Input> = Vec::new();
    for i in inputs {
        let slot = match kind_of(i) {
            Some(Kind::HaCf) => &mut ha_cf,
            Some(Kind::Haresources) => &mut haresources,
            Some(Kind::Authkeys) => &mut authkeys,
            Some(Kind::Ldirectord) => {
                ld_inputs.push(i);
                continue;
            }
            None => {
                report.note(
                    &Pos::file(&i.name),
                    "",
                    "no directive: nothing to import from this file",
                    Advice::None,
                );
                continue;
            }
        };
        if let Some(prev) = slot {
            report.error(
                &Pos::file(&i.name),
                "",
                format!("a second file of the same kind as {}", prev.name),
                Advice::Fix("give ha.cf, haresources and authkeys once each".into()),
            );
            continue;
        }
        *slot = Some(i);
    }
    let mut cx = Ctx { report };
    let h = ha_cf.map(|i| cx.ha_cf(i)).unwrap_or_default();
    let auth = authkeys.and_then(|i| cx.authkeys(i));
    let report = cx.report;
    if ha_cf.is_none() {
        report.note(
            &Pos::file(
                inputs
                    .first()
                    .map(|i| i.name.as_str())
                    .unwrap_or("<heartbeat>"),
            ),
            "",
            "no ha.cf: node names, timings and media come from halb's defaults",
            Advice::None,
        );
    }
    // Which node this director is.
    let me: Option<String> = match (&opts.node, h.nodes.first()) {
        (Some(n), _) => {
            if !h.nodes.is_empty() && !h.nodes.iter().any(|w| w.text == *n) {
                let known: Vec<&str> = h.nodes.iter().map(|w| w.text.as_str()).collect();
                report.error(
                    &h.nodes[0].pos,
                    "node",
                    format!("--node {n} is not a node of ha.cf"),
                    Advice::Fix(format!("--node {}", known.join(" or --node "))),
                );
            }
            Some(n.clone())
        }
        (None, Some(first)) => {
            if h.nodes.len() > 1 {
                report.note(&first.pos, "node", format!("this file is for node {} (the first node): import again with --node {} for the other director", first.text, h.nodes[1].text), Advice::None);
            }
            Some(first.text.clone())
        }
        (None, None) => None,
    };
    if h.nodes.len() > 2 {
        report.unmapped(&h.nodes[2].pos, "node", "more than two nodes", Advice::Feature("each VRRP instance has one master; give each further director its own priority by hand".into()));
    }
    // Timings.
    let hadir = ha_cf
        .or(haresources)
        .and_then(|i| i.name.rfind('/').map(|k| i.name[..k].to_owned()))
        .unwrap_or_else(|| "/etc/ha.d".to_owned());
    let advert_ms: Option<u64> = match (&h.deadtime, &h.keepalive) {
        (Some((dead, _)), _) => {
            // Master_Down = 3 × advert + (256 − 100) / 256 × advert for the
            // backup (priority 100) = deadtime.
            let adv = (*dead as f64 * 256.0 / (3.0 * 256.0 + 156.0) / 10.0).round() as u64 * 10;
            Some(adv.clamp(10, 40_950))
        }
        (None, Some((ka, _))) => Some(((*ka / 10) * 10).clamp(10, 40_950)),
        _ => None,
    };
    if let Some(adv) = advert_ms {
        let down = |prio: i64| 3 * adv + (256 - prio as u64) * adv / 256;
        let pos = h
            .deadtime
            .as_ref()
            .or(h.keepalive.as_ref())
            .map(|x| x.1.clone())
            .unwrap_or_else(|| Pos::file(""));
        let orig = match (&h.deadtime, &h.keepalive) {
            (Some((d, _)), Some((k, _))) => format!("heartbeat declared the peer dead after deadtime {} without one of its heartbeats (sent every {})", emit::duration_ms(*d), emit::duration_ms(*k)),
            (Some((d, _)), None) => format!("heartbeat declared the peer dead after deadtime {}", emit::duration_ms(*d)),
            (None, Some((k, _))) => format!("heartbeats every {}, no deadtime", emit::duration_ms(k.to_owned())),
            _ => String::new(),
        };
        report.note(&pos, if h.deadtime.is_some() { "deadtime" } else { "keepalive" }, format!("{orig}; halb: advert_interval = \"{}\", so the backup (priority {OTHER}) takes over after 3 × {} + skew = about {:.2}s without an advert (the failover time; {:.2}s for priority {PREFERRED})", emit::duration_ms(adv), emit::duration_ms(adv), down(OTHER) as f64 / 1000.0, down(PREFERRED) as f64 / 1000.0), Advice::Key("advert_interval".into()));
        if let (Some((k, kpos)), Some(_)) = (&h.keepalive, &h.deadtime) {
            if *k != adv {
                report.note(kpos, "keepalive", format!("heartbeats every {}: VRRP adverts go every {} instead (the failover time follows deadtime)", emit::duration_ms(*k), emit::duration_ms(adv)), Advice::Key("advert_interval".into()));
            }
        }
    }
    if let Some((ms, pos)) = &h.initdead {
        let adv = advert_ms.unwrap_or(1000);
        let down = 3 * adv + (256 - OTHER as u64) * adv / 256;
        report.unmapped(pos, "initdead", format!("waits {} at start before declaring the peer dead", emit::duration_ms(*ms)), Advice::Feature(format!("a starting halb director waits one master-down time (about {:.2}s here) before it takes the addresses; no separate boot-time wait", down as f64 / 1000.0)));
    }
    let preempt = match &h.auto_failback {
        Some((b, _)) => *b,
        None => {
            if ha_cf.is_some() {
                report.note(
                    &Pos::file(ha_cf.map(|i| i.name.as_str()).unwrap_or("")),
                    "auto_failback",
                    "not set: heartbeat's default is legacy (fails back)",
                    Advice::Key("preempt = true".into()),
                );
            }
            true
        }
    };
    // Authentication.
    let auth_value: Option<Value> = match &auth {
        None => None,
        Some(Auth::Crc(pos)) => {
            report.note(
                pos,
                "crc",
                "heartbeat's crc detects corruption only, with no secret",
                Advice::Feature("VRRP without authentication (its checksum does the same)".into()),
            );
            None
        }
        Some(Auth::Hmac { method, key, pos }) => {
            if key.len() >= 16 {
                report.note(pos, method, format!("heartbeat signs its packets with HMAC-{}", method.to_ascii_uppercase()), Advice::Feature("auth = { type = \"hmac-sha256\" } with the same key: HMAC-SHA256 over each VRRP advert, between halb directors only (keepalived cannot join)".into()));
                Some(emit::inline(vec![
                    ("type", "hmac-sha256".into()),
                    ("key", key.as_str().into()),
                ]))
            } else {
                report.unmapped(pos, method, format!("heartbeat signs its packets with HMAC-{} and a key of {} bytes", method.to_ascii_uppercase(), key.len()), Advice::Fix("halb's hmac-sha256 needs a key of 16 bytes or more: add auth = { type = \"hmac-sha256\", key = \"…\" } (openssl rand -hex 32) with the same key on both directors; the instances were written without auth".into()));
                None
            }
        }
    };
    // haresources.
    let mut ld = Ld::new(source, opts);
    let mut member_names: BTreeSet<String> = BTreeSet::new();
    let mut imported_ld: BTreeSet<String> = BTreeSet::new();
    let mut vrid = 0i64;
    let lines = haresources
        .map(|i| logical_lines(&i.name, &i.text))
        .unwrap_or_default();
    if haresources.is_some() && lines.is_empty() {
        report.note(
            &Pos::file(haresources.map(|i| i.name.as_str()).unwrap_or("")),
            "",
            "no resource line: heartbeat moves nothing",
            Advice::None,
        );
    }
    for (li, line) in lines.iter().enumerate() {
        let node = &line[0];
        if !h.nodes.is_empty() && !h.nodes.iter().any(|w| w.text == node.text) {
            let known: Vec<&str> = h.nodes.iter().map(|w| w.text.as_str()).collect();
            report.error(
                &node.pos,
                "",
                format!(
                    "node {:?} is not a node of ha.cf ({})",
                    node.text,
                    known.join(", ")
                ),
                Advice::Fix("the line starts with the preferred node's uname -n".into()),
            );
            continue;
        }
        let mut vips: Vec<(Vip, &Word)> = Vec::new();
        let mut members: Vec<Resource> = Vec::new();
        for w in &line[1..] {
            let mut parts = w.text.split("::");
            let name = parts.next().unwrap_or("").to_owned();
            let args: Vec<String> = parts.map(str::to_owned).collect();
            let ip_arg = if name
                .split('/')
                .next()
                .is_some_and(|a| a.parse::<IpAddr>().is_ok())
            {
                Some(w.text.clone())
            } else if matches!(name.as_str(), "IPaddr" | "IPaddr2" | "IPv6addr") {
                match args.first() {
                    Some(a) => Some(a.clone()),
                    None => {
                        report.error(
                            &w.pos,
                            &name,
                            format!("{name} needs an address: {name}::IP[/PREFIX[/DEV]]"),
                            Advice::Fix(format!("{name}::192.0.2.10/24/eth0")),
                        );
                        continue;
                    }
                }
            } else {
                None
            };
            if let Some(a) = ip_arg {
                match parse_vip(&a) {
                    Ok(v) => {
                        if a.split('/').nth(3).is_some() {
                            report.note(
                                &w.pos,
                                &name,
                                "a broadcast address: the kernel's default for the prefix is used",
                                Advice::None,
                            );
                        }
                        vips.push((v, w));
                    }
                    Err(e) => report.error(
                        &w.pos,
                        &name,
                        e,
                        Advice::Fix("IPaddr::192.0.2.10/24/eth0".into()),
                    ),
                }
                continue;
            }
            if name.is_empty() {
                report.error(
                    &w.pos,
                    "",
                    "an empty resource name",
                    Advice::Fix("NAME or NAME::ARG".into()),
                );
                continue;
            }
            if name == "ldirectord" {
                let conf = args
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "ldirectord.cf".to_owned());
                let base = conf.rsplit('/').next().unwrap_or(&conf).to_owned();
                if !imported_ld.insert(conf.clone()) {
                    continue;
                }
                if let Some(i) = ld_inputs
                    .iter()
                    .find(|i| i.name.rsplit('/').next() == Some(base.as_str()))
                {
                    ld.file(&i.name, &i.text, out, report);
                    report.note(&w.pos, "ldirectord", format!("ldirectord ran with this group only; its services ({}) are imported and halb programs them on both directors (only the master gets the traffic, with the VIP)", i.name), Advice::None);
                    continue;
                }
                let candidates: Vec<String> = if conf.starts_with('/') {
                    vec![conf.clone()]
                } else {
                    let mut c = vec![format!("{hadir}/{conf}"), format!("{hadir}/conf/{conf}")];
                    if hadir != "/etc/ha.d" {
                        c.push(format!("/etc/ha.d/{conf}"));
                        c.push(format!("/etc/ha.d/conf/{conf}"));
                    }
                    c
                };
                let mut read = None;
                let mut why = Vec::new();
                for c in &candidates {
                    match source.read(c) {
                        Ok(t) => {
                            read = Some((c.clone(), t));
                            break;
                        }
                        Err(e) => why.push(format!("{c}: {e}")),
                    }
                }
                match read {
                    Some((path, text)) => {
                        ld.file(&path, &text, out, report);
                        report.note(&w.pos, "ldirectord", format!("ldirectord ran with this group only; its services ({path}) are imported and halb programs them on both directors (only the master gets the traffic, with the VIP)"), Advice::None);
                    }
                    None => report.error(&w.pos, "ldirectord", format!("cannot read its config ({})", why.join("; ")), Advice::Fix("give the ldirectord config among the files: halb import heartbeat ha.cf haresources authkeys ldirectord.cf".into())),
                }
                continue;
            }
            members.push(Resource {
                word: w,
                name,
                args,
            });
        }
        if vips.is_empty() && members.is_empty() {
            continue;
        }
        let n = li + 1;
        let inst_name = format!("VI_{n}");
        let preferred = me.as_deref() == Some(node.text.as_str()) || me.is_none();
        let prio = if preferred { PREFERRED } else { OTHER };
        if !vips.is_empty() {
            vrid += 1;
            let interface = vips
                .iter()
                .find_map(|((_, _, d), _)| d.clone())
                .or_else(|| h.interface.as_ref().map(|w| w.text.clone()));
            let mut t = emit::table(
                &node.pos,
                &format!("haresources line of node {}", node.text),
            );
            emit::set_str(&mut t, "name", &inst_name);
            let iface = match interface {
                Some(i) => i,
                None => {
                    report.unmapped(&vips[0].1.pos, "interface", "heartbeat puts the address on the interface whose route covers it", Advice::Fix("halb needs the interface: eth0 was written, correct it (or write IPaddr::IP/PREFIX/DEV)".into()));
                    "eth0".to_owned()
                }
            };
            emit::set_str(&mut t, "interface", &iface);
            emit::set_int(&mut t, "virtual_router_id", vrid);
            emit::set_int(&mut t, "priority", prio);
            emit::set_int(&mut t, "version", 3);
            if let Some(adv) = advert_ms {
                emit::set_str(&mut t, "advert_interval", emit::duration_ms(adv));
            }
            emit::set_bool(&mut t, "preempt", preempt);
            let mut list: Vec<Value> = Vec::new();
            let mut fam: Option<bool> = None;
            for ((ip, prefix, dev), w) in &vips {
                if fam.is_some_and(|f| f != ip.is_ipv6()) {
                    report.unmapped(
                        &w.pos,
                        "",
                        format!("{ip}: IPv4 and IPv6 addresses in one line"),
                        Advice::Feature(
                            "one VRRP instance per family: add a second instance by hand".into(),
                        ),
                    );
                    continue;
                }
                fam = Some(ip.is_ipv6());
                let p = prefix.unwrap_or(if ip.is_ipv6() { 128 } else { 32 });
                if prefix.is_none() {
                    report.note(&w.pos, "", format!("{ip} without a prefix: heartbeat takes the route's netmask; written as /{p}"), Advice::Fix("write the prefix (IPaddr2::IP/24) if the address needs its subnet".into()));
                }
                let a = format!("{ip}/{p}");
                match dev {
                    Some(d) if *d != iface => list.push(emit::inline(vec![
                        ("address", a.as_str().into()),
                        ("interface", d.as_str().into()),
                    ])),
                    _ => list.push(a.as_str().into()),
                }
            }
            emit::set_array(&mut t, "virtual_ipaddress", list);
            let peers: Vec<String> = h
                .ucast
                .iter()
                .filter(|(ip, _, _)| Some(ip.is_ipv6()) == fam)
                .map(|(ip, _, _)| ip.to_string())
                .collect();
            if !peers.is_empty() {
                emit::set_str_array(&mut t, "unicast_peers", &peers);
                if let Some((_, p, _)) = h.ucast.first() {
                    if vrid == 1 {
                        report.note(p, "ucast", "unicast heartbeats: heartbeat skips a ucast line to its own address; halb sends to every unicast_peers address", Advice::Fix("keep only the other director's address in unicast_peers on each director".into()));
                    }
                }
            }
            if let Some(a) = &auth_value {
                t.insert("auth", value(a.clone()));
            }
            if !h.ping.is_empty() {
                let hosts: Vec<Value> = h
                    .ping
                    .iter()
                    .map(|(s, _)| Value::from(s.as_str()))
                    .collect();
                let mut arr = toml_edit::Array::new();
                for v in hosts {
                    arr.push_formatted(v);
                }
                t.insert(
                    "track_ping",
                    value(emit::inline(vec![("hosts", Value::Array(arr))])),
                );
            }
            out.vrrp_instance(t);
            let other = h
                .nodes
                .iter()
                .map(|w| w.text.as_str())
                .find(|x| Some(*x) != me.as_deref());
            report.note(&node.pos, "", format!("VRRP instance {inst_name}, virtual_router_id {vrid} (heartbeat has none: the same on both directors, unused by other VRRP routers on the LAN); priority {prio} here{}", match (other, preferred) {
                (Some(o), true) => format!(", {OTHER} on {o} (import with --node {o})"),
                (Some(o), false) => format!(", {PREFERRED} on {o}, the preferred node (import with --node {o})"),
                (None, _) => String::new(),
            }), Advice::None);
        }
        if members.is_empty() {
            continue;
        }
        if vips.is_empty() {
            for m in &members {
                report.unmapped(&m.word.pos, &m.name, format!("a resource of a line without an address (node {})", node.text), Advice::Feature("halb's resource groups follow a VRRP instance: add an address to the line, or put the resource in another group".into()));
            }
            continue;
        }
        let mut g = emit::table(
            &node.pos,
            &format!("haresources line of node {}: its resources", node.text),
        );
        emit::set_str(&mut g, "name", format!("group_{n}"));
        emit::set_str(&mut g, "follows", &inst_name);
        for m in &members {
            let known = RESOURCE_D.contains(&m.name.as_str())
                || source
                    .read(&format!("{hadir}/resource.d/{}", m.name))
                    .is_ok();
            let agent = if known || !m.args.is_empty() {
                if !known {
                    report.note(&m.word.pos, &m.name, format!("not one of heartbeat's resource.d scripts: heartbeat runs {hadir}/resource.d/{0} if it exists, else /etc/init.d/{0}", m.name), Advice::Fix(format!("imported as heartbeat:{}: install the script in resource.d (halb check-config names it if missing)", m.word.text)));
                }
                format!("heartbeat:{}", m.word.text)
            } else {
                report.note(&m.word.pos, &m.name, format!("heartbeat runs {hadir}/resource.d/{0} if it exists, else the init script /etc/init.d/{0}", m.name), Advice::Fix(format!("imported as lsb:{0}; write heartbeat:{0} if you have a resource.d script of that name", m.name)));
                format!("lsb:{}", m.name)
            };
            let base = match m.args.first() {
                Some(a) if m.name == "drbddisk" || m.name == "MailTo" => {
                    format!("{}-{}", m.name, a.rsplit('/').next().unwrap_or(a))
                }
                _ => m.name.clone(),
            };
            let mut mt = emit::table(&m.word.pos, &m.word.text);
            emit::set_str(&mut mt, "name", member_name(&base, &mut member_names));
            emit::set_str(&mut mt, "agent", agent);
            emit::push_member(&mut g, mt);
        }
        out.resource_group(g);
    }
    for i in &ld_inputs {
        let base = i.name.rsplit('/').next().unwrap_or(&i.name);
        if !imported_ld
            .iter()
            .any(|c| c.rsplit('/').next() == Some(base))
        {
            ld.file(&i.name, &i.text, out, report);
            report.note(
                &Pos::file(&i.name),
                "",
                "no ldirectord:: resource names this file: its services are imported as given",
                Advice::None,
            );
        }
    }
    if h.nodes.is_empty() && ha_cf.is_some() {
        report.note(
            &Pos::file(ha_cf.map(|i| i.name.as_str()).unwrap_or("")),
            "node",
            "no node line: heartbeat would not start",
            Advice::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_vips_and_lines() {
        assert_eq!(hb_ms("2"), Some(2000));
        assert_eq!(hb_ms("1500ms"), Some(1500));
        assert_eq!(hb_ms("0.5"), Some(500));
        assert_eq!(hb_ms("x"), None);
        assert_eq!(
            parse_vip("10.0.0.1/24/eth1/10.0.0.255").unwrap(),
            ("10.0.0.1".parse().unwrap(), Some(24), Some("eth1".into()))
        );
        assert_eq!(parse_vip("10.0.0.1/255.255.255.0").unwrap().1, Some(24));
        assert_eq!(parse_vip("10.0.0.1/eth0").unwrap().2, Some("eth0".into()));
        assert!(parse_vip("10.0.0.1/40").is_err());
        let l = logical_lines("h", "a 10.0.0.1 \\\n  httpd # c\n\nb x\n");
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].len(), 3);
        assert_eq!(l[0][2].pos, Pos::new("h", 2, 3));
    }
}
