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
    /// The text of line `line`, for the snippet.
    pub source_line: Option<String>,
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
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let width = self.end_column.saturating_sub(self.column).max(1);
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
        ConfigError {
            file: file.to_owned(),
            line: idx + 1,
            column,
            end_column: column + width,
            key: p.key,
            message: p.message,
            expected: p.expected,
            fix: p.fix,
            source_line: Some(text.to_owned()),
            span: Some(p.span),
        }
    }
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
}
