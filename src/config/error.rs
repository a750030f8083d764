//! Configuration errors: every problem found, each with where it is and what would be valid.

use std::fmt;
use std::path::PathBuf;

/// A configuration that cannot be used. Maps to exit code 78 (EX_CONFIG).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{}", render(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// A job name that the configuration does not have (`Config::job`). Maps to exit code 78.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no job named \"{name}\" in {}{}; jobs are: {}",
    path.display(),
    suggestion.as_ref().map(|s| format!(" (did you mean \"{s}\"?)")).unwrap_or_default(),
    known.join(", ")
)]
pub struct UnknownJob {
    /// The name asked for.
    pub name: String,
    /// The configuration file.
    pub path: PathBuf,
    /// A known name the asked one is a likely typo of.
    pub suggestion: Option<String>,
    /// Every job's name, in the file's order.
    pub known: Vec<String>,
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the file, when the problem has a place in it (not for an environment override).
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// Dotted path of the key, e.g. `jobs[2].schedule` (with the job's name when it has one).
    pub key: String,
    /// What is wrong and what would be valid. Never contains the value of a secret-looking key.
    pub message: String,
}

impl ConfigError {
    /// The problems found (empty when the file could not be read at all).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Unreadable { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.key, self.message)
        }
    }
}

fn render(path: &std::path::Path, problems: &[Problem]) -> String {
    let mut out = format!(
        "{} has {} problem{}:",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  ");
        match (p.line, p.column) {
            (Some(line), Some(col)) => out.push_str(&format!("{}:{line}:{col}: ", path.display())),
            (Some(line), None) => out.push_str(&format!("{}:{line}: ", path.display())),
            _ => {}
        }
        out.push_str(&p.to_string());
    }
    out
}
