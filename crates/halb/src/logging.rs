//! Logs on stderr: text (the default) or JSON lines (`--log-format
//! json`), at `--log-level` (else `HALB_LOG`, else `info`). When stderr is
//! the journal (`JOURNAL_STREAM`, see [`crate::systemd::stderr_is_journal`])
//! each line starts with its syslog priority, `<3>` error, `<4>` warning,
//! `<6>` info, `<7>` debug and trace, which journald strips and ranks the
//! line by (`journalctl -p warning`); a text line then carries neither
//! timestamp nor level word (the journal has both).

use clap::ValueEnum;
use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, fields, message).
    Json,
}

/// The syslog priority journald ranks a line by.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// A formatter that puts `<N>` before each line `inner` writes (a
/// multi-line message, a rejected reload's errors say, stays at its
/// priority on every line: journald reads each line on its own).
struct Prefixed<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prefixed<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut text = String::new();
        self.0.format_event(ctx, Writer::new(&mut text), event)?;
        writer.write_str(&prefix_lines(priority(event.metadata().level()), &text))
    }
}

/// `text` with `<priority>` at the start of each of its lines.
fn prefix_lines(priority: u8, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.lines() {
        out.push('<');
        out.push(char::from(b'0' + priority % 10));
        out.push('>');
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The filter: `level` (a level or `EnvFilter` directives such as
/// `info,halb_vrrp_net=debug`), else `HALB_LOG`, else `info`.
pub fn filter(level: Option<&str>) -> Result<EnvFilter, String> {
    match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| {
            format!(
                "--log-level {l:?}: {e} (write error, warn, info, debug or trace, \
                 or directives such as info,halb_vrrp_net=debug)"
            )
        }),
        None => Ok(EnvFilter::try_from_env("HALB_LOG").unwrap_or_else(|_| EnvFilter::new("info"))),
    }
}

/// Installs the subscriber for the whole process.
pub fn init(format: Format, filter: EnvFilter) {
    use std::io::IsTerminal;
    let journal = crate::systemd::stderr_is_journal();
    let ansi = !journal && format == Format::Text && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(false);
    // A second init (tests) is not an error worth stopping for.
    let _ = match (format, journal) {
        (Format::Text, false) => builder.try_init(),
        (Format::Text, true) => builder
            .event_format(Prefixed(
                tracing_subscriber::fmt::format()
                    .with_target(false)
                    .with_level(false)
                    .with_ansi(false)
                    .without_time(),
            ))
            .try_init(),
        (Format::Json, false) => builder.json().try_init(),
        (Format::Json, true) => builder
            .event_format(Prefixed(
                tracing_subscriber::fmt::format().json().with_target(false),
            ))
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_are_syslogs() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
        assert_eq!(priority(&Level::TRACE), 7);
    }

    #[test]
    fn every_line_gets_the_prefix() {
        assert_eq!(
            prefix_lines(3, "reload rejected:\n  a\n  b\n"),
            "<3>reload rejected:\n<3>  a\n<3>  b\n"
        );
        assert_eq!(prefix_lines(6, "one"), "<6>one\n");
    }

    #[test]
    fn a_bad_level_says_what_to_write() {
        assert!(filter(Some("debug")).is_ok());
        assert!(filter(Some("info,halb_vrrp_net=debug")).is_ok());
        let e = filter(Some("loud=please=now")).unwrap_err();
        assert!(e.contains("write error, warn, info"), "{e}");
    }
}
