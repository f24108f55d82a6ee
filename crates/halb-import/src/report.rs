//! What an import did not carry over, and why: one [`Finding`] per item,
//! positioned in the original file, collected in a [`Report`].

use std::fmt;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Mapped, but it behaves differently in halb (said how): not counted
    /// as unmapped by `--strict`.
    Note,
    /// Read and understood, but not carried over: halb has no equivalent,
    /// or it needs a step the importer does not take.
    Unmapped,
    /// The input cannot be read as this format: nothing is written.
    Error,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Unmapped => "unmapped",
            Severity::Error => "error",
        }
    }
}

/// What to do in halb instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advice {
    /// The halb key that does the same (written, but with a difference
    /// the finding explains; or to be set by hand).
    Key(String),
    /// A halb feature that replaces it (how, in words).
    Feature(String),
    /// halb has nothing that does this yet.
    NotSupported,
    /// A parse error's fix.
    Fix(String),
    /// Nothing to add.
    None,
}

impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Advice::Key(k) => write!(f, "in halb: `{k}`"),
            Advice::Feature(s) => write!(f, "in halb: {s}"),
            Advice::NotSupported => write!(f, "in halb: not supported yet"),
            Advice::Fix(s) => write!(f, "fix: {s}"),
            Advice::None => Ok(()),
        }
    }
}

/// One item of the original that the report names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// The file as the user named it (or as an include resolved it).
    pub file: String,
    /// 1-based; 0 when the finding concerns the whole file.
    pub line: usize,
    /// 1-based, in characters; 0 with `line` 0.
    pub col: usize,
    /// The keyword (or block path, `vrrp_instance VI_1.use_vmac`).
    pub key: String,
    /// What it did in the original (or, for an error, what is wrong).
    pub what: String,
    pub advice: Advice,
}

impl Finding {
    /// A keyword that was read but not carried over.
    pub fn unmapped(
        pos: &Pos,
        key: impl Into<String>,
        what: impl Into<String>,
        advice: Advice,
    ) -> Self {
        Finding::new(Severity::Unmapped, pos, key, what, advice)
    }

    /// A keyword that was carried over with a difference.
    pub fn note(
        pos: &Pos,
        key: impl Into<String>,
        what: impl Into<String>,
        advice: Advice,
    ) -> Self {
        Finding::new(Severity::Note, pos, key, what, advice)
    }

    /// A parse error.
    pub fn error(pos: &Pos, key: impl Into<String>, what: impl Into<String>, fix: Advice) -> Self {
        Finding::new(Severity::Error, pos, key, what, fix)
    }

    pub fn new(
        severity: Severity,
        pos: &Pos,
        key: impl Into<String>,
        what: impl Into<String>,
        advice: Advice,
    ) -> Self {
        Finding {
            severity,
            file: pos.file.clone(),
            line: pos.line,
            col: pos.col,
            key: key.into(),
            what: what.into(),
            advice,
        }
    }
}

impl fmt::Display for Finding {
    /// `file:line:col: unmapped: key: what; in halb: …`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: ",
            self.file,
            self.line,
            self.col,
            self.severity.label()
        )?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.what)?;
        match self.advice {
            Advice::None => Ok(()),
            ref a => write!(f, "; {a}"),
        }
    }
}

/// A position in an input file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pos {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub fn new(file: impl Into<String>, line: usize, col: usize) -> Self {
        Pos {
            file: file.into(),
            line,
            col,
        }
    }

    /// The whole file (line and column 0).
    pub fn file(file: impl Into<String>) -> Self {
        Pos::new(file, 0, 0)
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Every finding of one import, in the order they were found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn push(&mut self, f: Finding) {
        self.findings.push(f);
    }

    pub fn unmapped(&mut self, pos: &Pos, key: &str, what: impl Into<String>, advice: Advice) {
        self.push(Finding::unmapped(pos, key, what, advice));
    }

    pub fn note(&mut self, pos: &Pos, key: &str, what: impl Into<String>, advice: Advice) {
        self.push(Finding::note(pos, key, what, advice));
    }

    pub fn error(&mut self, pos: &Pos, key: &str, what: impl Into<String>, fix: Advice) {
        self.push(Finding::error(pos, key, what, fix));
    }

    /// In source order: by line and column within each file, the files
    /// in the order they first appear.
    pub fn sort(&mut self) {
        let mut files: Vec<String> = Vec::new();
        for f in &self.findings {
            if !files.contains(&f.file) {
                files.push(f.file.clone());
            }
        }
        self.findings.sort_by_key(|f| {
            let i = files.iter().position(|x| *x == f.file).unwrap_or(0);
            (i, f.line, f.col)
        });
    }

    pub fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }

    pub fn has_errors(&self) -> bool {
        self.count(Severity::Error) > 0
    }

    /// Anything read and not carried over (`--strict` fails on it).
    pub fn has_unmapped(&self) -> bool {
        self.count(Severity::Unmapped) > 0
    }

    /// Only the errors (what a failed import returns).
    pub fn errors_only(mut self) -> Report {
        self.findings.retain(|f| f.severity == Severity::Error);
        self
    }

    /// One line per finding, then nothing else (the binary adds a summary).
    pub fn render(&self) -> String {
        let mut s = String::new();
        for f in &self.findings {
            s.push_str(&f.to_string());
            s.push('\n');
        }
        s
    }

    /// `2 unmapped, 1 note` / `no findings`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [
            (Severity::Error, "error"),
            (Severity::Unmapped, "unmapped"),
            (Severity::Note, "note"),
        ]
        .iter()
        .filter_map(|&(s, name)| match self.count(s) {
            0 => None,
            1 => Some(format!("1 {name}")),
            n if name == "unmapped" => Some(format!("{n} {name}")),
            n => Some(format!("{n} {name}s")),
        })
        .collect();
        if parts.is_empty() {
            "everything mapped".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_positioned_lines() {
        let mut r = Report::default();
        let p = Pos::new("keepalived.conf", 12, 5);
        r.unmapped(
            &p,
            "use_vmac",
            "a virtual MAC for the VRRP instance",
            Advice::NotSupported,
        );
        r.note(
            &p,
            "auth_pass",
            "keepalived sends only the first 8 bytes",
            Advice::Key("auth.password".into()),
        );
        r.error(
            &p,
            "vrrp_instance",
            "missing `{`",
            Advice::Fix("add `{`".into()),
        );
        assert_eq!(
            r.render(),
            "keepalived.conf:12:5: unmapped: use_vmac: a virtual MAC for the VRRP instance; in halb: not supported yet\n\
             keepalived.conf:12:5: note: auth_pass: keepalived sends only the first 8 bytes; in halb: `auth.password`\n\
             keepalived.conf:12:5: error: vrrp_instance: missing `{`; fix: add `{`\n"
        );
        assert!(r.has_errors() && r.has_unmapped());
        assert_eq!(r.summary(), "1 error, 1 unmapped, 1 note");
        assert_eq!(r.clone().errors_only().findings.len(), 1);
        assert_eq!(Report::default().summary(), "everything mapped");
    }
}
