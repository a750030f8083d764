//! The shape of a job table ([`TableSpec`]), the rows of one window loaded into it ([`Batch`],
//! column-major) and what [`super::Store::ensure_table`] found when it compared the two.

use chrono::NaiveDate;

use super::column::TextColumn;

/// The shape of a job table.
///
/// The store adds three metadata columns of its own to every job table, `_run_id` (the
/// `export_runs.id` that last changed the row), `_loaded_at` (when) and `_row_hash` (a fingerprint
/// of the row's values, to leave unchanged rows out of a load); a spec must not name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Table name (in the configured schema on Postgres).
    pub table: String,
    /// The columns, in table order.
    pub columns: Vec<ColumnSpec>,
    /// The primary key: names from `columns`. A key may gain columns over time (the table's primary
    /// key is widened; existing rows get '' in a new text key column). It loses only columns named
    /// in `descriptive`.
    pub key: Vec<String>,
    /// Columns that only describe the key (a campaign's name beside its id): a table whose key
    /// still holds them, made when names were part of a Query API job's key, is narrowed to `key`,
    /// collapsing rows that then share it to the most recently loaded. Any other column leaving
    /// the key would merge rows that are not the same thing (two creatives of a campaign), so that
    /// is refused ([`super::StoreError::KeyMismatch`]).
    pub descriptive: Vec<String>,
}

/// One column of a [`TableSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: String,
    pub ty: ColumnType,
}

impl ColumnSpec {
    /// A column named `name` of type `ty`.
    pub fn new(name: impl Into<String>, ty: ColumnType) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            ty,
        }
    }
}

/// The column types a job table uses.
///
/// | type | Postgres | SQLite |
/// |---|---|---|
/// | `Text` | `text` | `TEXT` |
/// | `Numeric` | `numeric` (exact) | `NUMERIC` (SQLite keeps about 15 significant digits) |
/// | `Date` | `date` | `TEXT` `YYYY-MM-DD` |
/// | `Boolean` | `boolean` | `INTEGER` 0/1 |
/// | `Json` | `jsonb` | `TEXT` (checked and minified with `json()`) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Numeric,
    Date,
    Boolean,
    Json,
}

/// The rows of one window, column-major: one [`ColumnData`] per column of the [`TableSpec`], in the
/// same order, all of the same length.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    pub columns: Vec<ColumnData>,
}

impl Batch {
    /// Number of rows (the length of the first column; 0 without columns).
    pub(crate) fn rows(&self) -> usize {
        self.columns.first().map_or(0, ColumnData::len)
    }
}

/// The values of one column.
///
/// Null in a key column: a **text** key value that is `None` is stored as `''` (the empty string),
/// so a row whose dimension is missing has a stable key and a second such row upserts onto it.
/// A null in a key column of any other type fails the load with [`super::StoreError::InvalidBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnData {
    Text(TextColumn),
    /// Exact decimal text as the API sent it, e.g. `"12.340000"`; Postgres parses it, so text that
    /// is not a number fails the window.
    Numeric(TextColumn),
    Date(Vec<Option<NaiveDate>>),
    Boolean(Vec<Option<bool>>),
    /// JSON text; invalid JSON fails the window.
    Json(TextColumn),
}

impl ColumnData {
    /// Number of values.
    pub(crate) fn len(&self) -> usize {
        match self {
            ColumnData::Text(v) | ColumnData::Numeric(v) | ColumnData::Json(v) => v.len(),
            ColumnData::Date(v) => v.len(),
            ColumnData::Boolean(v) => v.len(),
        }
    }

    /// The column type these values are for.
    pub(crate) fn ty(&self) -> ColumnType {
        match self {
            ColumnData::Text(_) => ColumnType::Text,
            ColumnData::Numeric(_) => ColumnType::Numeric,
            ColumnData::Date(_) => ColumnType::Date,
            ColumnData::Boolean(_) => ColumnType::Boolean,
            ColumnData::Json(_) => ColumnType::Json,
        }
    }

    pub(super) fn is_null(&self, row: usize) -> bool {
        match self {
            ColumnData::Text(v) | ColumnData::Numeric(v) | ColumnData::Json(v) => v.is_null(row),
            ColumnData::Date(v) => v[row].is_none(),
            ColumnData::Boolean(v) => v[row].is_none(),
        }
    }

    /// True when a text value did not fit the column's limit (see [`TextColumn::overflowed`]).
    pub(super) fn overflowed(&self) -> bool {
        match self {
            ColumnData::Text(v) | ColumnData::Numeric(v) | ColumnData::Json(v) => v.overflowed(),
            ColumnData::Date(_) | ColumnData::Boolean(_) => false,
        }
    }
}

/// What [`super::Store::ensure_table`] did or found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableChanges {
    /// The table did not exist and was created.
    pub created: bool,
    /// Columns added to an existing table (`ALTER TABLE ... ADD COLUMN`).
    pub added: Vec<String>,
    /// The primary key was widened to the spec's key (it gained columns).
    pub key_widened: bool,
    /// The primary key was narrowed to the spec's key (it lost columns: a table made when names
    /// were part of a Query API job's key, brought to its grain).
    pub key_narrowed: bool,
    /// Rows that shared a key once it was narrowed: all but the most recently loaded of each were
    /// deleted.
    pub collapsed: u64,
    /// Columns that exist with another type than the spec asks for. They are kept as they are
    /// (nothing is converted or dropped behind the operator's back); loading a value that the old
    /// type cannot hold fails the window.
    pub type_mismatches: Vec<TypeMismatch>,
}

/// A column whose existing type differs from the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeMismatch {
    pub column: String,
    /// The type in the database, as the database names it (e.g. `text`, `NUMERIC`).
    pub existing: String,
    /// The existing type as a [`ColumnType`], when it is one of ours.
    pub existing_type: Option<ColumnType>,
    pub wanted: ColumnType,
}
