//! How a command ends: the process exit codes promised in the contract (sysexits.h where one
//! fits), and [`Exit`], the one place where a typed error becomes one of them.
//!
//! Commands return `Result<(), Exit>` and use `?` on the library's errors; `From` impls below
//! classify each error once, so no module outside `cli` knows an exit code.

use std::fmt;

use crate::api::ApiError;
use crate::config::{ConfigError, CredentialsError, UnknownJob};
use crate::demo::DemoError;
use crate::export::{FailureKind, RunError};
use crate::store::StoreError;
use crate::verify::VerifyError;

/// Everything succeeded.
pub const SUCCESS: u8 = 0;
/// A run (or one of its windows) failed.
pub const RUN_FAILED: u8 = 1;
/// The command line could not be parsed (clap's own convention).
pub const USAGE: u8 = 2;
/// A required service (the Rokt API or the database) stayed unreachable after retries (EX_UNAVAILABLE).
pub const UNAVAILABLE: u8 = 69;
/// The configuration or the credentials are invalid (EX_CONFIG).
pub const CONFIG: u8 = 78;

/// A command that did not succeed: its exit code and, unless the command already said why on its
/// own output, the message to print on stderr.
#[derive(Debug)]
pub struct Exit {
    code: u8,
    message: Option<String>,
}

impl Exit {
    /// Ends with `code` and prints `message` (prefixed `error: `).
    pub fn new(code: u8, message: impl Into<String>) -> Exit {
        Exit {
            code,
            message: Some(message.into()),
        }
    }

    /// Ends with `code`; what went wrong was printed already (a run's summary).
    pub fn quietly(code: u8) -> Exit {
        Exit {
            code,
            message: None,
        }
    }

    /// A command-line usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> Exit {
        Exit::new(USAGE, message)
    }

    /// A configuration problem (exit 78).
    pub fn config(message: impl Into<String>) -> Exit {
        Exit::new(CONFIG, message)
    }

    /// Any other failure (exit 1).
    pub fn failed(message: impl Into<String>) -> Exit {
        Exit::new(RUN_FAILED, message)
    }

    /// The exit code for a kind of failure.
    pub fn code_of(kind: FailureKind) -> u8 {
        match kind {
            FailureKind::Config => CONFIG,
            FailureKind::Unavailable => UNAVAILABLE,
            FailureKind::Other => RUN_FAILED,
        }
    }

    pub fn code(&self) -> u8 {
        self.code
    }

    /// The message to print on stderr, if any.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    fn of(kind: FailureKind, error: &dyn fmt::Display) -> Exit {
        Exit::new(Exit::code_of(kind), error.to_string())
    }
}

impl From<ConfigError> for Exit {
    fn from(e: ConfigError) -> Exit {
        Exit::config(e.to_string())
    }
}

impl From<UnknownJob> for Exit {
    fn from(e: UnknownJob) -> Exit {
        Exit::config(e.to_string())
    }
}

impl From<CredentialsError> for Exit {
    fn from(e: CredentialsError) -> Exit {
        Exit::config(e.to_string())
    }
}

impl From<ApiError> for Exit {
    fn from(e: ApiError) -> Exit {
        Exit::of(FailureKind::of_api(&e), &e)
    }
}

impl From<StoreError> for Exit {
    fn from(e: StoreError) -> Exit {
        Exit::of(FailureKind::of_store(&e), &e)
    }
}

impl From<RunError> for Exit {
    fn from(e: RunError) -> Exit {
        Exit::of(e.kind(), &e)
    }
}

impl From<VerifyError> for Exit {
    fn from(e: VerifyError) -> Exit {
        Exit::of(e.kind(), &e)
    }
}

impl From<DemoError> for Exit {
    fn from(e: DemoError) -> Exit {
        match e {
            DemoError::Config(e) => Exit::from(e),
            DemoError::Api(e) => Exit::from(e),
            DemoError::Store { ref source, .. } => Exit::of(FailureKind::of_store(source), &e),
            DemoError::BadUrl(_) => Exit::usage(e.to_string()),
            DemoError::NotADemoDatabase { .. } => Exit::config(e.to_string()),
            DemoError::Mock(_) => Exit::failed(e.to_string()),
        }
    }
}

/// `.context("what was being done")` on a result whose error becomes an [`Exit`]: the message
/// reads "what was being done: the error".
pub trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T, Exit>;
}

impl<T, E: Into<Exit>> Context<T> for Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T, Exit> {
        self.map_err(|e| {
            let exit: Exit = e.into();
            let message = match exit.message {
                Some(m) => format!("{what}: {m}"),
                None => what.to_string(),
            };
            Exit::new(exit.code, message)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_the_contracts_codes() {
        assert_eq!(Exit::code_of(FailureKind::Config), 78);
        assert_eq!(Exit::code_of(FailureKind::Unavailable), 69);
        assert_eq!(Exit::code_of(FailureKind::Other), 1);
        let e: Result<(), Exit> = Err(Exit::failed("boom")).context("loading");
        let e = e.unwrap_err();
        assert_eq!(e.code(), 1);
        assert_eq!(e.message(), Some("loading: boom"));
        let quiet: Result<(), Exit> = Err(Exit::quietly(69)).context("x");
        assert_eq!(quiet.unwrap_err().message(), Some("x"));
    }
}
