//! What the two answer readers share: the error that fails a window whose answer cannot be read,
//! the `_extra` column that keeps whatever a job did not name, and the count of values kept there
//! because their type did not fit their column.
//!
//! A leaf module: [`query`](super::query) (Query API answers, streamed) and
//! [`generic`](super::generic) (any other endpoint) both use it, and it uses neither.

use std::collections::BTreeMap;

/// Why an answer could not be turned into rows. Fails the window; nothing of it is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowsError {
    #[error("the answer is not the expected JSON: {0}")]
    Shape(String),
    #[error("row {row} (counting from 0): {message}")]
    Row { row: usize, message: String },
}

/// Columns every table has besides the job's own.
pub const EXTRA_COLUMN: &str = "_extra";

/// Values that were kept in `_extra` because their type did not fit their column, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Diversions {
    /// column name → how many values went to `_extra` instead.
    pub by_column: BTreeMap<String, usize>,
}

/// Whether `s` is a JSON number (a metric or numeric field sent as a quoted decimal).
pub(crate) fn is_decimal(s: &str) -> bool {
    serde_json::from_str::<serde_json::Number>(s).is_ok()
}
