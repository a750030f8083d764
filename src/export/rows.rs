//! What the two answer readers share: the error that fails a window whose answer cannot be read,
//! the `_extra` column that keeps whatever a job did not name, and [`Notes`]: what reading an
//! answer noticed besides its rows (values kept in `_extra` because their type did not fit their
//! column, rows skipped, rows that lacked a dimension).
//!
//! A leaf module: [`query`](super::query) (Query API answers, streamed) and
//! [`generic`](super::generic) (any other endpoint) both use it, and it uses neither.

use std::collections::BTreeMap;

/// Why an answer could not be turned into rows. Fails the window; nothing of it is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowsError {
    #[error("the answer is not the expected JSON: {0}")]
    Shape(String),
    /// The answer holds no rows but an error (`message`, `error`, `detail` or `errors`).
    #[error("the API answered with an error and no rows: {0}")]
    Refused(String),
    #[error("row {row} (counting from 0): {message}")]
    Row { row: usize, message: String },
}

/// Columns every table has besides the job's own.
pub const EXTRA_COLUMN: &str = "_extra";

/// What reading an answer noticed besides its rows; each becomes a warning in the log, the run
/// record and the run's summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notes {
    /// column name → how many values went to `_extra` instead (their type did not fit).
    pub diverted: BTreeMap<String, usize>,
    /// Rows that were empty (`{}` or `[]`), skipped.
    pub empty_rows: usize,
    /// dimension → how many rows lacked it (kept, with `''` in the key).
    pub missing: BTreeMap<String, usize>,
}

impl Notes {
    /// One sentence per thing noticed; empty when there was nothing.
    pub fn remarks(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (column, n) in &self.diverted {
            out.push(format!(
                "{n} value(s) of `{column}` had an unexpected type and were kept in `_extra`"
            ));
        }
        if self.empty_rows > 0 {
            out.push(format!(
                "{} empty row(s) (`{{}}` or `[]`) were skipped",
                self.empty_rows
            ));
        }
        for (dimension, n) in &self.missing {
            out.push(format!(
                "{n} row(s) had no `{dimension}`; they were kept with '' in its column"
            ));
        }
        out
    }
}

/// Whether `s` is a JSON number (a metric or numeric field sent as a quoted decimal).
pub(crate) fn is_decimal(s: &str) -> bool {
    serde_json::from_str::<serde_json::Number>(s).is_ok()
}
