//! Logging: human-readable text on a terminal, JSON lines for services (`--log-format json`).
//!
//! Logs go to stderr so that the output of `validate`, `status` and `demo` on stdout stays clean.
//! Verbosity comes from `RUST_LOG`; the default keeps chatty dependencies at WARN.
//!
//! Text logs are one line per event whatever the fields hold: a field value (an API error message,
//! an account id, anything from outside) has its control characters escaped by [`sanitize`] and is
//! cut at [`MAX_FIELD_CHARS`], so a server cannot forge log lines or send terminal escapes. Colour
//! only when stderr is a terminal and `NO_COLOR` is not set (the command line decides, see
//! [`use_colour`]). JSON logs escape control characters by construction.

use std::borrow::Cow;
use std::fmt::Write as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::fmt::writer::MakeWriterExt as _;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable lines for a terminal or the journal.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,hyper=warn,reqwest=warn,h2=warn,rustls=warn";

/// The filter for interactive one-shot commands (`demo`, `validate`, `status`, `migrate`), whose own
/// output says what happened: only warnings and errors unless `RUST_LOG` asks for more.
pub const QUIET_FILTER: &str = "warn";

/// The longest field value of a text log line, in characters; longer ones are cut.
pub const MAX_FIELD_CHARS: usize = 2_000;

/// Whether text logs may use ANSI colours: only on a terminal, and never when `NO_COLOR` is set
/// to a non-empty value (<https://no-color.org>).
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber; `default_filter` applies when `RUST_LOG` is not set; `colour`
/// (text only) says whether to use ANSI colours. Calling it twice is harmless (the second call
/// does nothing).
pub fn init_with(format: LogFormat, default_filter: &str, colour: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let writer = std::io::stderr.with_max_level(tracing::Level::TRACE);
    let result = match format {
        LogFormat::Text => {
            // Like tracing's default field format, with every value made safe for one line.
            let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
                let text = format!("{value:?}");
                let text = sanitize(&text, MAX_FIELD_CHARS);
                if field.name() == "message" {
                    write!(w, "{text}")
                } else {
                    write!(w, "{}={text}", field.name())
                }
            })
            .delimited(" ");
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(writer)
                .with_target(false)
                .with_ansi(colour)
                .fmt_fields(fields)
                .try_init()
        }
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(writer)
            .with_ansi(false)
            .try_init(),
    };
    // Err only means a subscriber is already installed (tests, embedding): keep that one.
    let _ = result;
}

/// Text from outside (an API's message, an account id, a value read from the database) made safe
/// for a terminal or one line of a text log: control characters (C0, DEL, C1), the Unicode line
/// and paragraph separators and the bidirectional controls become visible escapes (`\n`, `\r`,
/// `\t`, `\u{1b}`), and beyond `max_chars` characters the text is cut, saying how much was left
/// out. Borrowed when nothing needed changing.
pub fn sanitize(s: &str, max_chars: usize) -> Cow<'_, str> {
    let mut chars = 0usize;
    let clean = s.chars().all(|c| {
        chars += 1;
        !needs_escape(c)
    });
    if clean && chars <= max_chars {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(max_chars * 2) + 32);
    for (i, c) in s.chars().enumerate() {
        if i == max_chars {
            let _ = write!(
                out,
                "... [{} more characters]",
                s.chars().count().saturating_sub(max_chars)
            );
            break;
        }
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// [`sanitize`] for a message of several lines that this program wrote (a configuration error
/// lists its problems on lines indented below the first): a newline followed by indentation is
/// kept, any other (one that would start a line of its own, as a forged log line does) is escaped
/// like every other control character.
pub fn sanitize_message(s: &str, max_chars: usize) -> Cow<'_, str> {
    if !s.contains('\n') {
        return sanitize(s, max_chars);
    }
    let mut out = String::with_capacity(s.len());
    let mut lines = s.split('\n').peekable();
    while let Some(line) = lines.next() {
        out.push_str(&sanitize(line, max_chars));
        if let Some(next) = lines.peek() {
            if next.starts_with(' ') {
                out.push('\n');
            } else {
                out.push_str("\\n");
            }
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(!use_colour(false, None));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(
            use_colour(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset"
        );
    }

    #[test]
    fn control_characters_become_visible_escapes() {
        assert!(matches!(
            sanitize("plain text é 日本", 100),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            sanitize(
                "a\n2026-01-01 ERROR forged\r\t\x1b[31m\u{7f}\u{85}\u{202e}z",
                100
            ),
            "a\\n2026-01-01 ERROR forged\\r\\t\\u{1b}[31m\\u{7f}\\u{85}\\u{202e}z"
        );
    }

    #[test]
    fn long_text_is_cut_saying_how_much() {
        let long = "é".repeat(30);
        assert_eq!(
            sanitize(&long, 10),
            format!("{}... [20 more characters]", "é".repeat(10))
        );
        assert_eq!(sanitize(&"x\n".repeat(3), 2), "x\\n... [4 more characters]");
    }

    #[test]
    fn messages_keep_only_indented_continuation_lines() {
        let config = "jobs.toml has 2 problems:\n  jobs.toml:3:1: a\n  jobs.toml:4:1: b";
        assert_eq!(sanitize_message(config, 100), config);
        assert_eq!(
            sanitize_message("HTTP 400: bad\n2026-01-01 ERROR forged\x1b[0m", 100),
            "HTTP 400: bad\\n2026-01-01 ERROR forged\\u{1b}[0m"
        );
    }
}
