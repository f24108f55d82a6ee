//! Errors with a place in the file, and how they are shown.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a configuration file.
///
/// Positions are 1-based; `line` and `column` are 0 only for a problem with
/// the file as a whole (it cannot be read). Columns count characters, not
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as it was given to [`parse`](crate::parse) or
    /// [`load`](crate::load).
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Where the offending text ends on that line (exclusive); at least
    /// `column + 1`.
    pub end_column: usize,
    /// Where in the configuration: `virtual_service "web".real_server[0].weight`.
    /// Empty for syntax errors and unreadable files.
    pub key: String,
    /// What is wrong, naming what was found.
    pub message: String,
    /// What would have been accepted.
    pub expected: Option<String>,
    /// How to fix it.
    pub fix: Option<String>,
    /// The text of line `line`, for the snippet: cut to
    /// [`SNIPPET_WIDTH`] characters around the column (with `…` marks)
    /// when longer, and with the value of every secret key on it
    /// (passwords, keys) replaced by `***`.
    pub source_line: Option<String>,
    /// Where the underline goes in `source_line` (1-based characters;
    /// the same as `column` and `end_column` unless the line was cut or
    /// a secret before the column masked).
    pub source_column: usize,
    pub source_end_column: usize,
    /// Byte range of the offending text in the file.
    pub span: Option<Range<usize>>,
}

impl ConfigError {
    /// A problem with the file as a whole (it cannot be read).
    pub fn whole_file(file: &Path, message: impl Into<String>, fix: Option<String>) -> Self {
        ConfigError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            end_column: 0,
            key: String::new(),
            message: message.into(),
            expected: None,
            fix,
            source_line: None,
            source_column: 0,
            source_end_column: 0,
            span: None,
        }
    }
}

fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// rustc-style:
///
/// ```text
/// error: halb.toml:7:13: virtual_service "web".scheduler: unknown scheduler "wrrr"
///    |
///  7 | scheduler = "wrrr"
///    |             ^^^^^^
///    = expected: one of rr, wrr, lc, wlc, sed, nq, sh, dh, lblc, lblcr, mh, fo, ovf
///    = fix: did you mean "wrr"?
/// ```
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        f.write_str(": ")?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        let pad = " ".repeat(digits(self.line) + 2);
        if let (Some(text), true) = (&self.source_line, self.line > 0) {
            write!(f, "\n{pad}|\n {} |", self.line)?;
            if !text.is_empty() {
                write!(f, " {text}")?;
            }
            // Keep tabs so the carets line up under the text.
            let lead: String = text
                .chars()
                .take(self.source_column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let width = self
                .source_end_column
                .saturating_sub(self.source_column)
                .max(1);
            write!(f, "\n{pad}| {lead}{}", "^".repeat(width))?;
        }
        if let Some(e) = &self.expected {
            write!(f, "\n{pad}= expected: {e}")?;
        }
        if let Some(x) = &self.fix {
            write!(f, "\n{pad}= fix: {x}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one file, in source order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    /// `3 errors in halb.toml`.
    pub fn summary(&self) -> String {
        let n = self.errors.len();
        format!(
            "{n} error{} in {}",
            if n == 1 { "" } else { "s" },
            self.file.display()
        )
    }

    /// Every error with its snippet, a blank line between them, and a last
    /// line `halb: 3 errors in halb.toml`, newline-terminated (`Display`
    /// gives the same without the final newline).
    pub fn render(&self) -> String {
        format!("{self}\n")
    }

    /// As [`render`](Self::render), the last line saying what came of it:
    /// `halb: 3 errors in halb.toml; nothing was started`.
    pub fn render_with_outcome(&self, outcome: &str) -> String {
        let mut s = self.render_errors();
        s.push_str(&format!("halb: {}; {outcome}\n", self.summary()));
        s
    }

    fn render_errors(&self) -> String {
        let mut s = String::new();
        for e in &self.errors {
            s.push_str(&e.to_string());
            s.push_str("\n\n");
        }
        s
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}halb: {}", self.render_errors(), self.summary())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

/// A problem found while walking the document, before it is placed.
#[derive(Debug)]
pub(crate) struct Problem {
    pub span: Range<usize>,
    pub key: String,
    pub message: String,
    pub expected: Option<String>,
    pub fix: Option<String>,
}

impl Problem {
    pub fn new(span: Range<usize>, key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            span,
            key: key.into(),
            message: message.into(),
            expected: None,
            fix: None,
        }
    }

    pub fn expected(mut self, e: impl Into<String>) -> Self {
        self.expected = Some(e.into());
        self
    }

    pub fn fix(mut self, f: impl Into<String>) -> Self {
        self.fix = Some(f.into());
        self
    }
}

/// Byte offsets to lines and columns.
pub(crate) struct SourceMap<'s> {
    src: &'s str,
    /// Byte offset where each line starts.
    starts: Vec<usize>,
}

impl<'s> SourceMap<'s> {
    pub fn new(src: &'s str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            src.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        SourceMap { src, starts }
    }

    fn floor(&self, mut o: usize) -> usize {
        o = o.min(self.src.len());
        while o > 0 && !self.src.is_char_boundary(o) {
            o -= 1;
        }
        o
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let o = self.floor(offset);
        self.starts.partition_point(|&s| s <= o).max(1)
    }

    pub fn place(&self, file: &Path, p: Problem) -> ConfigError {
        let start = self.floor(p.span.start);
        let end = self.floor(p.span.end.max(start));
        let idx = self.starts.partition_point(|&s| s <= start).max(1) - 1;
        let ls = self.starts.get(idx).copied().unwrap_or(0);
        let le = self
            .starts
            .get(idx + 1)
            .map(|n| n.saturating_sub(1))
            .unwrap_or(self.src.len());
        let raw = self.src.get(ls..le).unwrap_or("");
        let text = raw.strip_suffix('\r').unwrap_or(raw);
        let text_end = ls + text.len();
        let start = start.min(text_end);
        let column = self.src.get(ls..start).map_or(0, |s| s.chars().count()) + 1;
        let underline_end = end.min(text_end).max(start);
        let width = self
            .src
            .get(start..underline_end)
            .map_or(0, |s| s.trim_end().chars().count())
            .max(1);
        let secrets = secret_ranges(text);
        let mut message = p.message;
        let mut expected = p.expected;
        let mut fix = p.fix;
        for r in &secrets {
            let raw = text.get(r.clone()).unwrap_or("");
            message = mask_in(&message, raw);
            expected = expected.map(|e| mask_in(&e, raw));
            fix = fix.map(|f| mask_in(&f, raw));
        }
        let (snippet, source_column, source_end_column) =
            snippet(text, &secrets, column, column + width);
        ConfigError {
            file: file.to_owned(),
            line: idx + 1,
            column,
            end_column: column + width,
            key: clip(p.key),
            message: clip(message),
            expected: expected.map(clip),
            fix: fix.map(clip),
            source_line: Some(snippet),
            source_column,
            source_end_column,
            span: Some(p.span),
        }
    }
}

/// Longest message, key path, expectation or fix an error carries, in
/// characters: a key of a megabyte is named by its first 1,000.
const MAX_TEXT: usize = 1000;

fn clip(s: String) -> String {
    match s.char_indices().nth(MAX_TEXT) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s,
    }
}

/// Widest source line an error quotes, in characters, `…` marks
/// included: a longer line is cut around the column.
pub const SNIPPET_WIDTH: usize = 120;

/// Whether a key holds a secret, whose value no error quotes: passwords
/// (`smtp_password`, a check's or VRRP auth's `password`, and the
/// misspellings halb suggests a fix for: `pass`, `passwd`,
/// `requirepass`, `auth_pass`), VRRP's hmac `key`, and anything named
/// like a secret or a token.
pub(crate) fn secret_key(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("pass")
        || n.contains("secret")
        || n.contains("token")
        || matches!(n.as_str(), "key" | "hmac_key" | "auth_key" | "api_key")
}

/// The byte ranges of the values of secret keys on one line of TOML
/// (`password = "x"`, `auth = { type = "pass", password = 'x' }`,
/// `smtp_password = x`, a dotted `auth.key = "x"`). A value that goes on
/// past the line (a multi-line string, an unclosed one) is masked to the
/// end of the line. A bare `auth = "x"` (a misplaced redis password) is
/// one too; `auth = { … }` is looked into instead.
pub(crate) fn secret_ranges(line: &str) -> Vec<Range<usize>> {
    let b = line.as_bytes();
    let n = b.len();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < n && matches!(b[i], b' ' | b'\t') {
            i += 1;
        }
        i
    };
    while i < n {
        i = skip_ws(i);
        if i >= n || b[i] == b'#' {
            break;
        }
        if matches!(b[i], b'{' | b'}' | b'[' | b']' | b',') {
            i += 1;
            continue;
        }
        // A key, maybe dotted and quoted: keep its last part.
        let mut last: Option<(usize, usize)> = None;
        loop {
            i = skip_ws(i);
            let start = i;
            match b.get(i) {
                Some(q @ (b'"' | b'\'')) => {
                    i = string_end(b, i, *q);
                    last = Some((start + 1, i.saturating_sub(1).max(start + 1)));
                }
                Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-') => {
                    while i < n && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'-')) {
                        i += 1;
                    }
                    last = Some((start, i));
                }
                _ => break,
            }
            let j = skip_ws(i);
            if b.get(j) == Some(&b'.') {
                i = j + 1;
            } else {
                break;
            }
        }
        let j = skip_ws(i);
        let Some((ks, ke)) = last.filter(|_| b.get(j) == Some(&b'=')) else {
            // Not `key =`: resynchronise on the next character.
            i = i.max(j) + usize::from(i.max(j) < n && last.is_none());
            continue;
        };
        let name = line.get(ks..ke).unwrap_or("");
        let v = skip_ws(j + 1);
        let end = value_end(b, v);
        let opens_table = b.get(v) == Some(&b'{');
        let secret = secret_key(name) || (name.eq_ignore_ascii_case("auth") && !opens_table);
        if secret && end > v && !opens_table {
            out.push(v..end);
            i = end;
        } else if matches!(b.get(v), Some(b'{' | b'[')) {
            // Look inside: inline tables hold keys.
            i = v + 1;
        } else {
            i = end.max(v + 1);
        }
    }
    out
}

/// Where a string starting at `i` (its quote `q`) ends: after its closing
/// quote (or triple quote), or at the end of the line.
fn string_end(b: &[u8], i: usize, q: u8) -> usize {
    let n = b.len();
    let triple = b.get(i..i + 3) == Some(&[q, q, q][..]);
    let mut k = i + if triple { 3 } else { 1 };
    while k < n {
        if q == b'"' && b[k] == b'\\' {
            k += 2;
            continue;
        }
        if b[k] == q && (!triple || b.get(k..k + 3) == Some(&[q, q, q][..])) {
            return (k + if triple { 3 } else { 1 }).min(n);
        }
        k += 1;
    }
    n
}

/// Where the value starting at `v` ends on the line: a string at its
/// closing quote, an array at its closing bracket, anything else before
/// the next `,`, `}`, `]` or `#` (trailing blanks left out).
fn value_end(b: &[u8], v: usize) -> usize {
    let n = b.len();
    match b.get(v) {
        None => n,
        Some(q @ (b'"' | b'\'')) => string_end(b, v, *q),
        Some(b'[') => {
            let mut depth = 0usize;
            let mut k = v;
            while k < n {
                match b[k] {
                    q @ (b'"' | b'\'') => {
                        k = string_end(b, k, q);
                        continue;
                    }
                    b'[' => depth += 1,
                    b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return k + 1;
                        }
                    }
                    b'#' => return n,
                    _ => {}
                }
                k += 1;
            }
            n
        }
        Some(_) => {
            let mut k = v;
            while k < n && !matches!(b[k], b',' | b'}' | b']' | b'#') {
                k += 1;
            }
            while k > v && matches!(b[k - 1], b' ' | b'\t') {
                k -= 1;
            }
            k
        }
    }
}

/// `s` with every occurrence of the secret `raw` (as written: `"x"`) and
/// of its text (`x`, also as a message quotes it) replaced by `***`.
/// Its bare text is masked only from 8 characters on, so that a
/// message's words are not garbled.
fn mask_in(s: &str, raw: &str) -> String {
    let inner = raw
        .strip_prefix("\"\"\"")
        .and_then(|r| r.strip_suffix("\"\"\""))
        .or_else(|| raw.strip_prefix("'''").and_then(|r| r.strip_suffix("'''")))
        .or_else(|| raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
        .or_else(|| raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
        .unwrap_or(raw);
    let mut out = s.to_owned();
    for form in [
        raw.to_owned(),
        crate::values::quote(inner),
        format!("`{inner}`"),
    ] {
        if form.chars().count() >= 3 && out.contains(&form) {
            out = out.replace(&form, "***");
        }
    }
    if inner.chars().count() >= 8 && out.contains(inner) {
        out = out.replace(inner, "***");
    }
    out
}

/// The line as an error quotes it (secrets masked, cut to
/// [`SNIPPET_WIDTH`] around the column) and where `column..end` falls
/// in it.
fn snippet(
    text: &str,
    secrets: &[Range<usize>],
    column: usize,
    end: usize,
) -> (String, usize, usize) {
    const MASK: &str = "***";
    // Byte offsets of the two columns in the original line.
    let byte_of = |col: usize| {
        text.char_indices()
            .nth(col.saturating_sub(1))
            .map_or(text.len(), |(b, _)| b)
    };
    let (sb, eb) = (byte_of(column), byte_of(end));
    let mut masked = String::with_capacity(text.len().min(1 << 16));
    let mut at = 0;
    let (mut nsb, mut neb) = (None, None);
    for r in secrets {
        if r.start < at || r.end > text.len() {
            continue;
        }
        masked.push_str(text.get(at..r.start).unwrap_or(""));
        let base = masked.len();
        masked.push_str(MASK);
        // A column inside the secret goes to the mask's start (an end:
        // its end).
        if nsb.is_none() && sb < r.end && sb >= r.start {
            nsb = Some(base);
        } else if nsb.is_none() && sb < r.start {
            nsb = Some(sb - at + base - (r.start - at));
        }
        if neb.is_none() && eb <= r.end && eb > r.start {
            neb = Some(base + MASK.len());
        } else if neb.is_none() && eb <= r.start {
            neb = Some(eb - at + base - (r.start - at));
        }
        at = r.end;
    }
    let tail = masked.len();
    masked.push_str(text.get(at..).unwrap_or(""));
    let nsb = nsb.unwrap_or(sb.saturating_sub(at) + tail);
    let neb = neb.unwrap_or(eb.saturating_sub(at) + tail).max(nsb);
    let col = masked.get(..nsb).map_or(0, |s| s.chars().count()) + 1;
    let end = (masked.get(..neb).map_or(0, |s| s.chars().count()) + 1).max(col + 1);
    let n = masked.chars().count();
    if n <= SNIPPET_WIDTH {
        return (masked, col, end);
    }
    // Cut: some context before the column, most of the width after it,
    // a … mark on each side that was cut.
    let room = SNIPPET_WIDTH - 2;
    let from = (col - 1).saturating_sub(room / 4).min(n - room);
    let to = from + room;
    let mut out = String::new();
    let lead = usize::from(from > 0);
    if from > 0 {
        out.push('…');
    }
    out.extend(masked.chars().skip(from).take(room));
    if to < n {
        out.push('…');
    }
    let c = col - from + lead;
    let e = (end.min(to + 1) - from + lead).max(c + 1);
    (out, c, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        let src = "a = 1\r\nbé = \"x\"\n\nlast";
        let m = SourceMap::new(src);
        let f = Path::new("f.toml");
        let e = m.place(f, Problem::new(0..1, "a", "m"));
        assert_eq!((e.line, e.column, e.end_column), (1, 1, 2));
        assert_eq!(e.source_line.as_deref(), Some("a = 1"));
        // Pointing at the \r\n: the end of line 1.
        let e = m.place(f, Problem::new(5..7, "", "m"));
        assert_eq!((e.line, e.column), (1, 6));
        let at = src.find('"').unwrap();
        let e = m.place(f, Problem::new(at..at + 3, "", "m"));
        assert_eq!((e.line, e.column, e.end_column), (2, 6, 9));
        let e = m.place(f, Problem::new(src.len()..src.len(), "", "m"));
        assert_eq!((e.line, e.column), (4, 5));
        // Inside a multi-byte char, past the end: clamped.
        let e = m.place(f, Problem::new(9..1000, "", "m"));
        assert_eq!(e.line, 2);
        assert_eq!(m.line_of(0), 1);
        assert_eq!(m.line_of(src.len()), 4);
    }

    #[test]
    fn display() {
        let src = "[x]\n\tscheduler = \"wrrr\"\n";
        let m = SourceMap::new(src);
        let at = src.find("\"wrrr\"").unwrap();
        let e = m.place(
            Path::new("halb.toml"),
            Problem::new(at..at + 6, "k", "unknown")
                .expected("one of rr")
                .fix("did you mean \"rr\"?"),
        );
        assert_eq!(
            e.to_string(),
            "error: halb.toml:2:14: k: unknown\n   |\n 2 | \tscheduler = \"wrrr\"\n   | \t            ^^^^^^\n   = expected: one of rr\n   = fix: did you mean \"rr\"?"
        );
        let errs = ConfigErrors {
            file: "halb.toml".into(),
            errors: vec![ConfigError::whole_file(
                Path::new("halb.toml"),
                "cannot read it",
                None,
            )],
        };
        assert_eq!(
            errs.render(),
            "error: halb.toml: cannot read it\n\nhalb: 1 error in halb.toml\n"
        );
        assert_eq!(errs.to_string() + "\n", errs.render());
        assert!(errs
            .render_with_outcome("nothing was started")
            .ends_with("halb: 1 error in halb.toml; nothing was started\n"));
    }

    /// Where the carets start in a rendered error, and how many.
    fn caret(shown: &str) -> (usize, usize) {
        let l = shown.lines().find(|l| l.contains('^')).unwrap();
        (l.find('^').unwrap(), l.matches('^').count())
    }

    /// Where `what` is in the quoted line of a rendered error.
    fn shown_at(shown: &str, what: &str) -> usize {
        let l = shown.lines().nth(2).unwrap();
        l.find(what).unwrap()
    }

    fn place_at(src: &str, needle: &str, len: usize) -> ConfigError {
        let m = SourceMap::new(src);
        let at = src.find(needle).unwrap();
        m.place(
            Path::new("halb.toml"),
            Problem::new(at..at + len, "k", "bad value"),
        )
    }

    #[test]
    fn secrets_are_masked() {
        let line = r#"auth = { type = "pas", password = "hunter2" }"#;
        let r = secret_ranges(line);
        assert_eq!(r.len(), 1);
        assert_eq!(&line[r[0].clone()], "\"hunter2\"");
        for (line, secret) in [
            ("smtp_password = 'hunter2'", "'hunter2'"),
            ("smtp_password = hunter2  # no quotes", "hunter2"),
            ("auth.key = \"0123456789abcdef\"", "\"0123456789abcdef\""),
            ("\"password\" = \"a\\\"b\"", "\"a\\\"b\""),
            ("password = [\"x\", \"y\"]", "[\"x\", \"y\"]"),
            ("requirepass = \"\"\"multi", "\"\"\"multi"),
            ("auth = \"redis-pass\"", "\"redis-pass\""),
            ("password = 1234", "1234"),
        ] {
            let r = secret_ranges(line);
            assert_eq!(r.len(), 1, "{line}");
            assert_eq!(&line[r[0].clone()], secret, "{line}");
        }
        for line in [
            "name = \"password = x\"",
            "client_key = \"/etc/k.pem\"",
            "[[virtual_service]]",
            "# password = \"x\"",
            "auth = { type = \"hmac-sha256\" }",
        ] {
            assert!(secret_ranges(line).is_empty(), "{line}");
        }

        // The caret still points at what it pointed at.
        let src = "[x]\nauth = { password = \"hunter2\", type = \"pas\" }\n";
        let e = place_at(src, "\"pas\"", 5);
        assert_eq!(
            e.source_line.as_deref(),
            Some("auth = { password = ***, type = \"pas\" }")
        );
        let shown = e.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(caret(&shown), (shown_at(&shown, "\"pas\""), 5), "{shown}");
        // An error on the secret itself: the caret under the mask, and
        // the message does not quote it either.
        let src = "[global.alert]\nsmtp_password = \"correct horse\"\n";
        let m = SourceMap::new(src);
        let at = src.find('"').unwrap();
        let e = m.place(
            Path::new("halb.toml"),
            Problem::new(at..at + 15, "k", "the string \"correct horse\" is bad")
                .fix("not `correct horse` nor correct horse"),
        );
        let shown = e.to_string();
        assert!(!shown.contains("horse"), "{shown}");
        assert!(shown.contains(" 2 | smtp_password = ***\n"), "{shown}");
        assert_eq!(caret(&shown), (shown_at(&shown, "***"), 3), "{shown}");
        assert_eq!(e.message, "the string *** is bad");
    }

    #[test]
    fn long_lines_are_cut() {
        let long = format!("name = \"{}\" # {}", "a".repeat(5000), "b".repeat(5000));
        let src = format!("[x]\n{long}\nnext = 1\n");
        // An error far into the line: cut on both sides.
        let e = place_at(&src, "# b", 1);
        let text = e.source_line.clone().unwrap();
        assert_eq!(text.chars().count(), SNIPPET_WIDTH, "{text}");
        assert!(text.starts_with('…') && text.ends_with('…'), "{text}");
        assert_eq!((e.line, e.column), (2, 5011));
        let under: char = text.chars().nth(e.source_column - 1).unwrap();
        assert_eq!(under, '#');
        assert!(e.to_string().len() < 1000, "{e}");
        // At the start: cut on the right only.
        let e = place_at(&src, "\"aaa", 5002);
        let text = e.source_line.clone().unwrap();
        assert!(
            text.starts_with("name = \"aaa") && text.ends_with('…'),
            "{text}"
        );
        assert_eq!(e.source_column, 8);
        assert!(e.source_end_column <= SNIPPET_WIDTH + 1);
        // A key of 10,000 characters is named by its first 1,000.
        let key = "k".repeat(10_000);
        let src = format!("{key} = 1\n");
        let m = SourceMap::new(&src);
        let e = m.place(
            Path::new("halb.toml"),
            Problem::new(0..key.len(), key.clone(), format!("unknown key `{key}`")),
        );
        assert!(
            e.to_string().chars().count() < 3000,
            "{}",
            e.to_string().len()
        );
        assert!(e.key.ends_with('…') && e.message.ends_with('…'));
        // Short lines are kept whole.
        let e = place_at("a = 1\n", "1", 1);
        assert_eq!(e.source_line.as_deref(), Some("a = 1"));
        assert_eq!((e.source_column, e.source_end_column), (5, 6));
    }
}
