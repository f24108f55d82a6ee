//! `halb import`: another tool's configuration in, halb's TOML and a
//! report out.
//!
//! Sans-IO: the inputs come in as text ([`Input`]); whatever else an
//! input names (keepalived's `include` globs, heartbeat's ldirectord
//! config, `/etc/hosts`) is read through the [`Source`] the caller passes
//! in, so tests feed files from memory and the binary from disk.
//!
//! Every keyword a format module reads is either written to the TOML
//! ([`emit`]) or named in the [`Report`] with its file, line and column,
//! what it did and what to do in halb instead. A file that cannot be
//! parsed gives every parse error, positioned, and no TOML.
//!
//! ```
//! use halb_import::{import, Format, Input, MemorySource, Options};
//! let rules = "-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 198.51.100.1:80 -m -w 1\n";
//! let out = import(
//!     Format::Ipvsadm,
//!     &[Input::new("rules", rules)],
//!     &MemorySource::default(),
//!     &Options::default(),
//! )
//! .unwrap();
//! assert!(out.toml.contains("forward = \"masq\""));
//! halb_import::check(&out.toml, "halb.toml").unwrap();
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod corosync;
pub mod emit;
mod heartbeat;
mod ipvsadm;
mod keepalived;
mod ldirectord;
mod names;
mod pacemaker;
pub mod report;

/// For the property tests of every format (unit and integration): `text`
/// mutated by `ops` — each `(at, op)` removes a byte, inserts one of
/// `alphabet` (the format's own punctuation), overwrites one with
/// `alphabet[0]`, or swaps two. Not part of the API.
#[doc(hidden)]
pub fn mutate(text: &str, ops: &[(usize, u8)], alphabet: &[u8]) -> String {
    let mut b: Vec<u8> = text.as_bytes().to_vec();
    for &(at, op) in ops {
        if b.is_empty() || alphabet.is_empty() {
            break;
        }
        let i = at % b.len();
        match op % 4 {
            0 => {
                b.remove(i);
            }
            1 => b.insert(i, alphabet[usize::from(op / 4) % alphabet.len()]),
            2 => b[i] = alphabet[0],
            _ => {
                let j = (i + usize::from(op)) % b.len();
                b.swap(i, j);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

pub use report::{Advice, Finding, Pos, Report, Severity};

use std::collections::BTreeMap;
use std::fmt;

/// The formats `halb import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// keepalived.conf (keepalived 2.2).
    Keepalived,
    /// ldirectord.cf (ldirectord 4.12).
    Ldirectord,
    /// heartbeat v1's ha.cf, haresources and authkeys.
    Heartbeat,
    /// `ipvsadm -S` (`ipvsadm-save`) output.
    Ipvsadm,
    /// crm shell text (`crm configure show`) or CIB XML (`cibadmin --query`).
    Pacemaker,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Keepalived,
        Format::Ldirectord,
        Format::Heartbeat,
        Format::Ipvsadm,
        Format::Pacemaker,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Keepalived => "keepalived",
            Format::Ldirectord => "ldirectord",
            Format::Heartbeat => "heartbeat",
            Format::Ipvsadm => "ipvsadm",
            Format::Pacemaker => "pacemaker",
        }
    }

    /// `keepalived`, … (case-insensitive).
    pub fn from_name(s: &str) -> Option<Format> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Guess the format of a file from its text (and nothing else): the first
/// keyword that belongs to one format only decides. None: no such keyword.
pub fn guess_format(text: &str) -> Option<Format> {
    for raw in text.lines().take(10_000) {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        if line.starts_with('<') {
            let l = line.to_ascii_lowercase();
            if l.starts_with("<cib") || l.contains("<configuration") || l.starts_with("<?xml") {
                return Some(Format::Pacemaker);
            }
            continue;
        }
        if line.starts_with("-A ") || line.starts_with("-a ") {
            return Some(Format::Ipvsadm);
        }
        let first = line
            .split(|c: char| c.is_whitespace() || c == '=' || c == '{')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match first.as_str() {
            "global_defs"
            | "vrrp_instance"
            | "vrrp_sync_group"
            | "vrrp_script"
            | "virtual_server"
            | "virtual_server_group"
            | "static_ipaddress"
            | "static_routes"
            | "vrrp_track_process"
            | "track_file"
            | "linkbeat_use_polling"
            | "include" => return Some(Format::Keepalived),
            "virtual" | "checktimeout" | "negotiatetimeout" | "checkinterval" | "autoreload"
            | "quiescent" | "emailalert" | "fallback" | "logfile"
                if line.contains('=') =>
            {
                return Some(Format::Ldirectord)
            }
            "node" | "keepalive" | "deadtime" | "initdead" | "bcast" | "ucast" | "mcast"
            | "auto_failback" | "warntime" | "udpport" | "auth" => {
                // crm shell's `node` lines carry a colon or `attributes`.
                if first == "node" && (line.contains("attributes") || line.contains(':')) {
                    return Some(Format::Pacemaker);
                }
                return Some(Format::Heartbeat);
            }
            "primitive" | "group" | "ms" | "clone" | "location" | "colocation" | "order"
            | "property" | "rsc_defaults" => return Some(Format::Pacemaker),
            _ => {}
        }
    }
    None
}

/// One input file, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// How it is named in comments and the report (`-` is `<stdin>`).
    pub name: String,
    pub text: String,
}

impl Input {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Input {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// Where an import reads what its inputs refer to.
pub trait Source {
    /// The text of the file at `path` (as the input spelt it, resolved
    /// against the including file's directory by the importer).
    fn read(&self, path: &str) -> Result<String, String>;
    /// The files a shell glob (`*`, `?`, `[…]`) matches, sorted; an empty
    /// list when none does.
    fn glob(&self, pattern: &str) -> Result<Vec<String>, String>;
}

/// A [`Source`] of files held in memory (tests, and inputs that name
/// nothing). Globs match with `*` and `?` within one path component.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    pub files: BTreeMap<String, String>,
}

impl MemorySource {
    pub fn with(mut self, path: &str, text: &str) -> Self {
        self.files.insert(path.to_owned(), text.to_owned());
        self
    }
}

impl Source for MemorySource {
    fn read(&self, path: &str) -> Result<String, String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| "No such file or directory".to_owned())
    }

    fn glob(&self, pattern: &str) -> Result<Vec<String>, String> {
        Ok(self
            .files
            .keys()
            .filter(|k| glob_match(pattern, k))
            .cloned()
            .collect())
    }
}

/// `*` and `?` within a path component; other characters literally.
fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn go(p: &[char], n: &[char], budget: &mut u32) -> bool {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => {
                go(&p[1..], n, budget) || (!n.is_empty() && n[0] != '/' && go(p, &n[1..], budget))
            }
            (Some('?'), Some(&c)) if c != '/' => go(&p[1..], &n[1..], budget),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..], budget),
            _ => false,
        }
    }
    go(&p, &n, &mut 100_000)
}

/// Choices the user makes on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// keepalived `-i CONFIG_ID`: which `@ID` conditional lines apply.
    /// None: lines for a named id are left out (and reported).
    pub config_id: Option<String>,
    /// `--hosts FILE`: the hosts file names resolve through (read with
    /// the [`Source`]); None: `/etc/hosts`.
    pub hosts_file: Option<String>,
    /// `--services FILE`: the services file; None: `/etc/services`.
    pub services_file: Option<String>,
    /// ldirectord: import a per-virtual key found unindented into the
    /// block above it (instead of only reporting it).
    pub fold_unindented: bool,
    /// heartbeat `--node NAME`: which node of ha.cf this director is
    /// (its priorities follow); None: the first `node`.
    pub node: Option<String>,
}

/// A successful import.
#[derive(Debug, Clone)]
pub struct Imported {
    /// halb TOML.
    pub toml: String,
    /// Notes and unmapped items (no errors).
    pub report: Report,
}

/// Import `inputs` (one or more files of `format`; includes and other
/// referenced files come from `source`). On a parse error: every error,
/// positioned, and no TOML.
pub fn import(
    format: Format,
    inputs: &[Input],
    source: &dyn Source,
    opts: &Options,
) -> Result<Imported, Report> {
    let mut report = Report::default();
    let mut out = emit::Emitter::new();
    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    out.header(format!(
        "Written by `halb import {}` from {}.",
        format.name(),
        names.join(", ")
    ));
    out.header("Each item names the file and line it came from; the import's report");
    out.header("(on standard error) names everything that did not carry over.");
    match format {
        Format::Keepalived => keepalived::import(inputs, source, opts, &mut out, &mut report),
        Format::Ldirectord => ldirectord::import(inputs, source, opts, &mut out, &mut report),
        Format::Heartbeat => heartbeat::import(inputs, source, opts, &mut out, &mut report),
        Format::Ipvsadm => ipvsadm::import(inputs, source, opts, &mut out, &mut report),
        Format::Pacemaker => pacemaker::import(inputs, source, opts, &mut out, &mut report),
    }
    report.sort();
    if report.has_errors() {
        return Err(report.errors_only());
    }
    let toml = out.finish();
    // A value the importer carried over as it was but halb refuses (an
    // e-mail address with a space, an interface name too long): an error
    // of the input, placed at the item it came from.
    if let Err(errors) = check(&toml, "imported.toml") {
        let mut bad = Report::default();
        for e in &errors.errors {
            let pos = origin_of(&toml, e.line);
            let fix = e.fix.clone().or_else(|| e.expected.clone());
            bad.error(
                &pos,
                &e.key,
                format!("halb refuses the value imported from here: {}", e.message),
                fix.map(Advice::Fix).unwrap_or(Advice::None),
            );
        }
        return Err(bad);
    }
    Ok(Imported { toml, report })
}

/// The `(from FILE:LINE)` of the item that holds line `line` of the
/// output (the nearest origin comment above it).
fn origin_of(toml: &str, line: usize) -> Pos {
    let lines: Vec<&str> = toml.lines().collect();
    let upto = line.min(lines.len());
    for l in lines[..upto].iter().rev() {
        if let Some(rest) = l.strip_prefix('#').and_then(|r| r.rsplit_once("(from ")) {
            if let Some((file, n)) = rest.1.trim_end_matches(')').rsplit_once(':') {
                if let Ok(n) = n.parse::<usize>() {
                    return Pos::new(file, n.max(1), 1);
                }
            }
        }
    }
    Pos::new("<import>", 1, 1)
}

/// halb's own config check of an import's output (`file` names it in
/// the errors).
pub fn check(toml: &str, file: &str) -> Result<halb_config::Config, halb_config::ConfigErrors> {
    halb_config::parse(toml, std::path::Path::new(file))
}

/// Resolve `path` (from an `include` or a reference in `from_file`)
/// against the directory of `from_file`; absolute paths stay.
pub(crate) fn resolve_relative(from_file: &str, path: &str) -> String {
    if path.starts_with('/') {
        return path.to_owned();
    }
    let joined = match from_file.rfind('/') {
        Some(i) => format!("{}/{}", &from_file[..i], path),
        None => return path.to_owned(),
    };
    // `dir/../x` is `x` (lexically, as the kernel would for directories).
    let abs = joined.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            ".." if abs => {}
            c => parts.push(c),
        }
    }
    let body = parts.join("/");
    if abs {
        format!("/{body}")
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses() {
        assert_eq!(
            guess_format("include /etc/keepalived/conf.d/*.conf\n"),
            Some(Format::Keepalived)
        );
        assert_eq!(
            guess_format("# saved\n-A -t 192.0.2.1:80 -s wlc\n"),
            Some(Format::Ipvsadm)
        );
        assert_eq!(
            guess_format("checktimeout=3\nvirtual=192.0.2.1:80\n"),
            Some(Format::Ldirectord)
        );
        assert_eq!(
            guess_format("keepalive 2\ndeadtime 30\n"),
            Some(Format::Heartbeat)
        );
        assert_eq!(
            guess_format("primitive ip ocf:heartbeat:IPaddr2\n"),
            Some(Format::Pacemaker)
        );
        assert_eq!(
            guess_format("<cib crm_feature_set=\"3\">\n"),
            Some(Format::Pacemaker)
        );
        assert_eq!(guess_format("hello\n"), None);
        assert_eq!(Format::from_name("KeepAlived"), Some(Format::Keepalived));
    }

    #[test]
    fn globs_in_memory() {
        assert!(glob_match("/etc/k/*.conf", "/etc/k/a.conf"));
        assert!(!glob_match("/etc/k/*.conf", "/etc/k/sub/a.conf"));
        assert!(glob_match("a?c", "abc"));
        assert_eq!(
            resolve_relative("/etc/k/keepalived.conf", "x/*.conf"),
            "/etc/k/x/*.conf"
        );
        assert_eq!(resolve_relative("keepalived.conf", "x.conf"), "x.conf");
        assert_eq!(resolve_relative("a", "/abs"), "/abs");
        assert_eq!(
            resolve_relative("/etc/k/d/b.conf", "../x.inc"),
            "/etc/k/x.inc"
        );
        assert_eq!(resolve_relative("d/b.conf", "./x"), "d/x");
    }

    #[test]
    fn a_cib_without_configuration_is_an_error() {
        let e = import(
            Format::Pacemaker,
            &[Input::new("cib.xml", "<cib/>")],
            &MemorySource::default(),
            &Options::default(),
        )
        .unwrap_err();
        assert!(e.render().contains("cib.xml:0:0: error"), "{e}");
        assert!(e.render().contains("no <configuration>"), "{e}");
    }
}
