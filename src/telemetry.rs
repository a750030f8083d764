//! Logging: human-readable text on a terminal, JSON lines for services (`--log-format json`).
//!
//! Logs go to stderr so that the output of `validate`, `status` and `demo` on stdout stays clean.
//! Verbosity comes from `RUST_LOG`; the default keeps chatty dependencies at WARN.

use tracing_subscriber::EnvFilter;
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

/// Installs the global subscriber; `default_filter` applies when `RUST_LOG` is not set. Calling it
/// twice is harmless (the second call does nothing).
pub fn init_with(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let writer = std::io::stderr.with_max_level(tracing::Level::TRACE);
    let result = match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .with_target(false)
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(writer)
            .try_init(),
    };
    // Err only means a subscriber is already installed (tests, embedding): keep that one.
    let _ = result;
}
