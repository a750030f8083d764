//! Logging: human-readable text on a terminal, JSON lines for services (`--log-format json`).
//!
//! Logs go to stderr so that the output of `validate`, `status` and `demo` on stdout stays clean.
//! Verbosity comes from `RUST_LOG`, else from the command line's choice of default filter; the
//! default keeps chatty dependencies at WARN.
//!
//! Text logs are one line per event whatever the fields hold: a field value (an API error message,
//! an account id, anything from outside) has its control characters escaped by [`sanitize`] and is
//! cut at [`MAX_FIELD_CHARS`], so a server cannot forge log lines or send terminal escapes. Colour
//! only when stderr is a terminal and `NO_COLOR` is not set (the command line decides, see
//! [`use_colour`]). JSON logs escape control characters by construction.
//!
//! While progress bars are drawn on stderr ([`Logging::bars`]), each log line is written whole in
//! one go *above* them: the bars are cleared, the line printed, the bars drawn again
//! (indicatif's `MultiProgress::suspend`), so a bar never lands in the middle of a line.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;

use indicatif::MultiProgress;
use tracing_subscriber::Layer as _;
use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

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

/// The filter of `-vv`: this program's debug events too.
pub const VERBOSE_FILTER: &str =
    "info,rokt_export=debug,sqlx=warn,hyper=warn,reqwest=warn,h2=warn,rustls=warn";

/// Where the per-window detail comes from: the INFO events of the export's window module
/// (`window loaded`, one per window). [`Logging::window_detail`] `false` leaves them out.
pub const WINDOW_DETAIL_TARGET: &str = "rokt_export::export::window";

/// The longest field value of a text log line, in characters; longer ones are cut.
pub const MAX_FIELD_CHARS: usize = 2_000;

/// Whether text logs may use ANSI colours: only on a terminal, and never when `NO_COLOR` is set
/// to a non-empty value (<https://no-color.org>).
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// How the process logs; the command line decides each part.
#[derive(Debug, Clone)]
pub struct Logging<'a> {
    pub format: LogFormat,
    /// The filter when `RUST_LOG` is not set.
    pub default_filter: &'a str,
    /// ANSI colours (text only).
    pub colour: bool,
    /// Whether the per-window INFO lines ([`WINDOW_DETAIL_TARGET`]) are logged when `RUST_LOG` is
    /// not set: `false` on a terminal that shows progress bars instead (warnings always are).
    pub window_detail: bool,
    /// Progress bars drawn on stderr: every log line is printed above them.
    pub bars: Option<MultiProgress>,
}

/// Installs the global subscriber as `logging` says. Calling it twice is harmless (the second
/// call does nothing).
pub fn init(logging: Logging<'_>) {
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let (filter, from_env, refused) = match rust_log.as_deref().map(parse_filter) {
        Some(Ok(filter)) => (filter, true, None),
        Some(Err(e)) => (default_filter(logging.default_filter), false, Some(e)),
        None => (default_filter(logging.default_filter), false, None),
    };
    // RUST_LOG says exactly what to log: it brings the window lines back too.
    let hide_window_detail = !logging.window_detail && !from_env;
    let detail = tracing_subscriber::filter::filter_fn(move |meta| {
        !(hide_window_detail
            && meta.is_event()
            && *meta.level() == tracing::Level::INFO
            && meta.target() == WINDOW_DETAIL_TARGET)
    });
    let writer = Stderr { bars: logging.bars };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match logging.format {
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
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_target(false)
                .with_ansi(logging.colour)
                .fmt_fields(fields)
                .with_filter(detail);
            registry.with(layer).try_init()
        }
        LogFormat::Json => {
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(writer)
                .with_ansi(false)
                .with_filter(detail);
            registry.with(layer).try_init()
        }
    };
    // Err only means a subscriber is already installed (tests, embedding): keep that one.
    let _ = result;
    if let Some(e) = refused {
        tracing::warn!(
            "RUST_LOG is not a filter this program reads ({e}); logging as without it. It takes \
             comma-separated LEVEL and TARGET=LEVEL directives, e.g. RUST_LOG=info,sqlx=debug"
        );
    }
}

/// Reads a `RUST_LOG`-style filter: comma-separated `LEVEL` and `TARGET=LEVEL` directives
/// (`info,rokt_export=debug,sqlx=warn`). tracing-subscriber's `Targets`, not its `EnvFilter`: the
/// span and field directives EnvFilter adds cost a regex engine in every build, and a target and
/// a level are what operators set.
pub fn parse_filter(text: &str) -> Result<Targets, String> {
    text.trim().parse::<Targets>().map_err(|e| e.to_string())
}

/// The built-in filters are constants this module's tests parse; should one ever fail to, log at
/// INFO rather than not at all.
fn default_filter(text: &str) -> Targets {
    parse_filter(text)
        .unwrap_or_else(|_| Targets::new().with_default(tracing::level_filters::LevelFilter::INFO))
}

/// The logs' writer: stderr, or stderr above the progress bars while some are drawn.
struct Stderr {
    bars: Option<MultiProgress>,
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        match &self.bars {
            None => Line::Plain(std::io::stderr()),
            Some(bars) => Line::Above {
                bars,
                text: Vec::with_capacity(256),
            },
        }
    }
}

/// One log record on its way out. Above bars it is collected, then written whole while the bars
/// are cleared (when the record is dropped), so that nothing is drawn in the middle of it.
enum Line<'a> {
    Plain(std::io::Stderr),
    Above {
        bars: &'a MultiProgress,
        text: Vec<u8>,
    },
}

impl std::io::Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Line::Plain(stderr) => stderr.write(buf),
            Line::Above { text, .. } => {
                text.extend_from_slice(buf);
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Line::Plain(stderr) => stderr.flush(),
            // Written when complete.
            Line::Above { .. } => Ok(()),
        }
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if let Line::Above { bars, text } = self
            && !text.is_empty()
        {
            bars.suspend(|| {
                let mut stderr = std::io::stderr().lock();
                // A log line that cannot be written has nowhere else to go.
                let _ = stderr.write_all(text);
                let _ = stderr.flush();
            });
        }
    }
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
    fn the_built_in_filters_parse_and_say_what_they_mean() {
        use tracing::Level;
        for text in [DEFAULT_FILTER, QUIET_FILTER, VERBOSE_FILTER] {
            assert!(parse_filter(text).is_ok(), "{text}");
        }
        let default = parse_filter(DEFAULT_FILTER).unwrap_or_else(|e| panic!("{e}"));
        assert!(default.would_enable(WINDOW_DETAIL_TARGET, &Level::INFO));
        assert!(!default.would_enable("rokt_export::store", &Level::DEBUG));
        assert!(!default.would_enable("sqlx::query", &Level::INFO));
        assert!(default.would_enable("sqlx::query", &Level::WARN));
        let verbose = parse_filter(VERBOSE_FILTER).unwrap_or_else(|e| panic!("{e}"));
        assert!(verbose.would_enable("rokt_export::store", &Level::DEBUG));
        assert!(!verbose.would_enable("hyper::proto", &Level::INFO));
        let quiet = parse_filter(QUIET_FILTER).unwrap_or_else(|e| panic!("{e}"));
        assert!(!quiet.would_enable(WINDOW_DETAIL_TARGET, &Level::INFO));
        assert!(quiet.would_enable(WINDOW_DETAIL_TARGET, &Level::WARN));
    }

    #[test]
    fn rust_log_takes_levels_and_targets_and_refuses_the_rest_with_a_reason() {
        use tracing::Level;
        let f = parse_filter(" debug,sqlx=warn ").unwrap_or_else(|e| panic!("{e}"));
        assert!(f.would_enable("rokt_export::api", &Level::DEBUG));
        assert!(!f.would_enable("sqlx::postgres", &Level::INFO));
        for bad in ["info,sqlx=loud", "[window{job=x}]=debug"] {
            let e = parse_filter(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} was read"));
            assert!(!e.is_empty(), "{bad}");
        }
    }

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
