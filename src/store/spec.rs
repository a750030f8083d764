//! Backend-neutral checks and preparation of a load: identifier validation and quoting, a batch
//! checked against its table spec, de-duplication of rows by key (last row wins), and the
//! [`Load`] a backend commits.
//!
//! Kept free of SQL execution so that both backends share one definition of "a valid table" and
//! "the same key", and so it can be unit-tested without a database.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{Hash, Hasher};
use std::ops::Range;

use super::error::StoreError;
use super::table::{Batch, ColumnData, TableSpec};

/// The longest text a key column may hold in one row. Postgres refuses a B-tree entry over about
/// 2,700 bytes (a third of a page); one key of several columns shares that.
const MAX_KEY_VALUE_BYTES: usize = 2_000;

/// Longest identifier Postgres keeps without truncating (NAMEDATALEN - 1, in bytes).
const MAX_IDENTIFIER_BYTES: usize = 63;

/// Metadata columns the store adds to every job table and fills itself.
pub(super) const RUN_ID_COLUMN: &str = "_run_id";
pub(super) const LOADED_AT_COLUMN: &str = "_loaded_at";
/// The row's fingerprint (see `fingerprint.rs`); null in rows written before it existed.
pub(super) const ROW_HASH_COLUMN: &str = "_row_hash";

/// Checks that `name` can be used as a double-quoted identifier on both backends.
pub(super) fn validate_identifier(what: &'static str, name: &str) -> Result<(), StoreError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.contains('"') {
        Some("it contains a double quote")
    } else if name.contains('\0') {
        Some("it contains a NUL character")
    } else if name.len() > MAX_IDENTIFIER_BYTES {
        Some("it is longer than 63 bytes (Postgres would silently truncate it)")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidName {
            what,
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// `name` as a double-quoted SQL identifier. Only call on a validated name: validation rejects `"`,
/// so no escaping is needed and the quoting cannot be broken out of.
pub(super) fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

/// A table spec that passed validation, with its columns split into key and value positions.
pub(super) struct Prepared<'a> {
    pub spec: &'a TableSpec,
    /// Positions (in `spec.columns`) of the key columns, in key order.
    pub key_idx: Vec<usize>,
    /// Positions of the non-key columns, in column order.
    pub value_idx: Vec<usize>,
}

impl Prepared<'_> {
    /// True when column `i` is part of the key.
    pub fn is_key(&self, i: usize) -> bool {
        self.key_idx.contains(&i)
    }
}

/// Validates names, duplicates and the key of `spec`.
pub(super) fn prepare(spec: &TableSpec) -> Result<Prepared<'_>, StoreError> {
    validate_identifier("table", &spec.table)?;
    let invalid = |reason: String| StoreError::InvalidSpec {
        table: spec.table.clone(),
        reason,
    };
    if spec.columns.is_empty() {
        return Err(invalid("it has no columns".into()));
    }
    if spec.key.is_empty() {
        return Err(invalid(
            "it has no key columns (every load is an upsert on the key)".into(),
        ));
    }
    let mut seen: HashMap<String, &str> = HashMap::new();
    for column in &spec.columns {
        validate_identifier("column", &column.name)?;
        if [RUN_ID_COLUMN, LOADED_AT_COLUMN, ROW_HASH_COLUMN].contains(&column.name.as_str()) {
            return Err(invalid(format!(
                "column {:?} is reserved for the store's own metadata",
                column.name
            )));
        }
        // SQLite compares identifiers case-insensitively: refuse on both backends what one rejects.
        if let Some(other) = seen.insert(column.name.to_lowercase(), &column.name) {
            return Err(invalid(format!(
                "columns {other:?} and {:?} differ only in letter case",
                column.name
            )));
        }
    }
    let mut key_idx = Vec::with_capacity(spec.key.len());
    for key in &spec.key {
        let Some(i) = spec.columns.iter().position(|c| &c.name == key) else {
            return Err(invalid(format!(
                "key column {key:?} is not one of its columns"
            )));
        };
        if key_idx.contains(&i) {
            return Err(invalid(format!("key column {key:?} is listed twice")));
        }
        key_idx.push(i);
    }
    let value_idx = (0..spec.columns.len())
        .filter(|i| !key_idx.contains(i))
        .collect();
    Ok(Prepared {
        spec,
        key_idx,
        value_idx,
    })
}

/// Checks that `batch` matches the prepared spec (one column per spec column, of its type, all of
/// one length) and that no key column other than a text one holds a null. Returns the row count.
pub(super) fn check_batch(prepared: &Prepared<'_>, batch: &Batch) -> Result<usize, StoreError> {
    let spec = prepared.spec;
    let invalid = |reason: String| StoreError::InvalidBatch {
        table: spec.table.clone(),
        reason,
    };
    if batch.columns.len() != spec.columns.len() {
        return Err(invalid(format!(
            "{} columns of data for {} columns in the table definition",
            batch.columns.len(),
            spec.columns.len()
        )));
    }
    let rows = batch.columns.first().map_or(0, ColumnData::len);
    for (data, column) in batch.columns.iter().zip(&spec.columns) {
        if data.ty() != column.ty {
            return Err(invalid(format!(
                "column {:?} is {:?} in the table definition but the data is {:?}",
                column.name,
                column.ty,
                data.ty()
            )));
        }
        if data.len() != rows {
            return Err(invalid(format!(
                "column {:?} has {} values, the first column has {rows}",
                column.name,
                data.len()
            )));
        }
        if data.overflowed() {
            return Err(invalid(format!(
                "column {:?} holds more than 4 GiB of text in one window; \
                 lower the job's window_days",
                column.name
            )));
        }
    }
    for &k in &prepared.key_idx {
        let data = &batch.columns[k];
        if let ColumnData::Text(values) = data {
            // Postgres keeps a key in a B-tree entry of at most ~2,700 bytes; a longer value
            // would fail the window with an index error that names nothing useful.
            if let Some((row, len)) = (0..rows)
                .map(|r| (r, values.get(r).map_or(0, str::len)))
                .find(|(_, len)| *len > MAX_KEY_VALUE_BYTES)
            {
                return Err(invalid(format!(
                    "key column {:?} holds a value of {len} bytes in row {row}; a key value may \
                     have at most {MAX_KEY_VALUE_BYTES} bytes (Postgres indexes about 2,700 bytes \
                     per key). If the field is not an identity, take it out of the job's key",
                    spec.columns[k].name
                )));
            }
            continue; // a null text key is stored as '' (see `ColumnData::Text`)
        }
        if let Some(row) = (0..rows).find(|&r| data.is_null(r)) {
            return Err(invalid(format!(
                "key column {:?} is null in row {row} (only text key columns may be null: \
                 they are stored as '')",
                spec.columns[k].name
            )));
        }
    }
    Ok(rows)
}

/// Which rows of a batch to write.
pub(super) enum Selection {
    /// All rows `0..n`: no key occurred twice.
    All(usize),
    /// These rows, ascending: the last occurrence of every key.
    Rows(Vec<usize>),
}

/// One statement's worth of rows.
pub(super) enum Chunk<'a> {
    Range(Range<usize>),
    Rows(&'a [usize]),
}

impl Selection {
    /// The rows of the selection for which `keep` is true, and how many were left out.
    pub fn retain(self, keep: impl Fn(usize) -> bool) -> (Selection, usize) {
        let (rows, before): (Vec<usize>, usize) = match self {
            Selection::All(n) => ((0..n).filter(|&r| keep(r)).collect(), n),
            Selection::Rows(rows) => {
                let before = rows.len();
                (rows.into_iter().filter(|&r| keep(r)).collect(), before)
            }
        };
        let left_out = before - rows.len();
        (Selection::Rows(rows), left_out)
    }

    /// The selection cut into chunks of at most `size` rows.
    pub fn chunks(&self, size: usize) -> Vec<Chunk<'_>> {
        let size = size.max(1);
        match self {
            Selection::All(n) => (0..*n)
                .step_by(size)
                .map(|start| Chunk::Range(start..(start + size).min(*n)))
                .collect(),
            Selection::Rows(rows) => rows.chunks(size).map(Chunk::Rows).collect(),
        }
    }
}

impl Chunk<'_> {
    /// Row numbers of the chunk, in order.
    pub fn rows(&self) -> Box<dyn Iterator<Item = usize> + '_> {
        match self {
            Chunk::Range(r) => Box::new(r.clone()),
            Chunk::Rows(rows) => Box::new(rows.iter().copied()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Chunk::Range(r) => r.len(),
            Chunk::Rows(rows) => rows.len(),
        }
    }
}

/// Keeps the last row of every key. Returns the selection and how many rows were dropped.
///
/// Keys compare the way the database will: a null text value equals '' (that is how it is stored),
/// and numeric text compares by value ("12.30" equals "12.3"), so that Postgres never sees one key
/// twice in a statement ("ON CONFLICT DO UPDATE command cannot affect row a second time").
///
/// `key_hashes` are the rows' key hashes ([`super::fingerprint::RowHashes::keys`]): rows are
/// grouped by them and compared key part by key part only when two hashes are equal.
pub(super) fn dedup(
    prepared: &Prepared<'_>,
    batch: &Batch,
    key_hashes: &[u64],
) -> (Selection, usize) {
    let rows = key_hashes.len();
    let key_columns: Vec<&ColumnData> = prepared
        .key_idx
        .iter()
        .map(|&i| &batch.columns[i])
        .collect();
    let key = |row| RowKey {
        columns: &key_columns,
        row,
    };
    // The key hashes are uniformly distributed already: foldhash only spreads them.
    let mut last: HashMap<u64, usize, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(rows, foldhash::fast::RandomState::default());
    let mut dropped: Vec<usize> = Vec::new();
    for (row, &hash) in key_hashes.iter().enumerate() {
        match last.entry(hash) {
            Entry::Occupied(mut e) => {
                if key(*e.get()) != key(row) {
                    // Two different keys with one 64-bit hash: compare the keys themselves.
                    return dedup_by_key(&key_columns, rows);
                }
                dropped.push(e.insert(row));
            }
            Entry::Vacant(e) => {
                e.insert(row);
            }
        }
    }
    selection_without(rows, &dropped)
}

/// [`dedup`] by the keys' values alone, for a batch in which two keys share a hash.
fn dedup_by_key(key_columns: &[&ColumnData], rows: usize) -> (Selection, usize) {
    let mut last: HashMap<RowKey<'_>, usize, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(rows, foldhash::fast::RandomState::default());
    let mut dropped: Vec<usize> = Vec::new();
    for row in 0..rows {
        let key = RowKey {
            columns: key_columns,
            row,
        };
        match last.entry(key) {
            Entry::Occupied(mut e) => {
                dropped.push(e.insert(row));
            }
            Entry::Vacant(e) => {
                e.insert(row);
            }
        }
    }
    selection_without(rows, &dropped)
}

/// Every row but `dropped`, and how many were dropped.
fn selection_without(rows: usize, dropped: &[usize]) -> (Selection, usize) {
    if dropped.is_empty() {
        return (Selection::All(rows), 0);
    }
    let mut keep = vec![true; rows];
    for &d in dropped {
        keep[d] = false;
    }
    let selected = (0..rows).filter(|&r| keep[r]).collect();
    (Selection::Rows(selected), dropped.len())
}

/// The key of one row, borrowed from the batch (no per-row allocation).
struct RowKey<'a> {
    columns: &'a [&'a ColumnData],
    row: usize,
}

impl PartialEq for RowKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.columns
            .iter()
            .all(|c| key_part(c, self.row) == key_part(c, other.row))
    }
}

impl Eq for RowKey<'_> {}

impl Hash for RowKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for c in self.columns {
            key_part(c, self.row).hash(state);
        }
    }
}

/// One key value in its comparable form.
#[derive(PartialEq, Eq, Hash)]
enum KeyPart<'a> {
    Null,
    Text(&'a str),
    Number(bool, &'a str, &'a str),
    Date(chrono::NaiveDate),
    Bool(bool),
}

fn key_part(column: &ColumnData, row: usize) -> KeyPart<'_> {
    match column {
        ColumnData::Text(v) => KeyPart::Text(v.get(row).unwrap_or("")),
        ColumnData::Json(v) => v.get(row).map_or(KeyPart::Null, KeyPart::Text),
        ColumnData::Numeric(v) => v.get(row).map_or(KeyPart::Null, |s| {
            let (negative, int, frac) = normalize_decimal(s);
            KeyPart::Number(negative, int, frac)
        }),
        ColumnData::Date(v) => v[row].map_or(KeyPart::Null, KeyPart::Date),
        ColumnData::Boolean(v) => v[row].map_or(KeyPart::Null, KeyPart::Bool),
    }
}

/// Splits decimal text into (negative, integer digits without leading zeros, fraction digits without
/// trailing zeros). Text that is not a plain decimal comes back whole as the integer part, so it
/// compares as itself.
pub(super) fn normalize_decimal(s: &str) -> (bool, &str, &str) {
    // `trim` only when an end could be whitespace: it is a visible cost on millions of cells.
    let untrimmed = |b: Option<&u8>| b.is_some_and(u8::is_ascii_graphic);
    let t = if untrimmed(s.as_bytes().first()) && untrimmed(s.as_bytes().last()) {
        s
    } else {
        s.trim()
    };
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    // One pass: where the point is, and whether everything else is a digit.
    let mut dot = None;
    for (i, b) in digits.bytes().enumerate() {
        match b {
            b'0'..=b'9' => {}
            b'.' if dot.is_none() => dot = Some(i),
            _ => return (false, s, ""),
        }
    }
    let (int, frac) = match dot {
        Some(i) => (&digits[..i], &digits[i + 1..]),
        None => (digits, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return (false, s, "");
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let zero = int.is_empty() && frac.is_empty();
    (negative && !zero, int, frac)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::{ColumnSpec, ColumnType, TextColumn};

    fn spec(key: &[&str]) -> TableSpec {
        TableSpec {
            table: "t".into(),
            columns: vec![
                ColumnSpec::new("k", ColumnType::Text),
                ColumnSpec::new("n", ColumnType::Numeric),
                ColumnSpec::new("v", ColumnType::Numeric),
            ],
            key: key.iter().map(|s| s.to_string()).collect(),
            descriptive: Vec::new(),
        }
    }

    fn text(v: &[Option<&str>]) -> TextColumn {
        v.iter().copied().collect()
    }

    #[test]
    fn identifiers() {
        assert!(validate_identifier("column", "a \"b").is_err());
        assert!(validate_identifier("column", "a\0b").is_err());
        assert!(validate_identifier("column", "").is_err());
        assert!(validate_identifier("column", &"é".repeat(32)).is_err()); // 64 bytes
        assert!(validate_identifier("column", &"a".repeat(63)).is_ok());
        assert!(validate_identifier("column", "名前; drop\ttable 🎉").is_ok());
        assert_eq!(quote("a b"), "\"a b\"");
    }

    #[test]
    fn spec_checks() {
        assert!(prepare(&spec(&["k"])).is_ok());
        assert!(prepare(&spec(&[])).is_err());
        assert!(prepare(&spec(&["nope"])).is_err());
        assert!(prepare(&spec(&["k", "k"])).is_err());
        let mut s = spec(&["k"]);
        s.columns.push(ColumnSpec::new("K", ColumnType::Text));
        assert!(prepare(&s).is_err());
        let mut s = spec(&["k"]);
        s.columns.push(ColumnSpec::new("_run_id", ColumnType::Text));
        assert!(prepare(&s).is_err());
    }

    #[test]
    fn batch_checks() {
        let s = spec(&["k", "n"]);
        let p = prepare(&s).unwrap();
        let ok = Batch {
            columns: vec![
                ColumnData::Text(text(&[None, Some("a")])),
                ColumnData::Numeric(text(&[Some("1"), Some("2")])),
                ColumnData::Numeric(text(&[None, None])),
            ],
        };
        assert_eq!(check_batch(&p, &ok).unwrap(), 2);
        let null_numeric_key = Batch {
            columns: vec![
                ColumnData::Text(text(&[Some("a")])),
                ColumnData::Numeric(text(&[None])),
                ColumnData::Numeric(text(&[None])),
            ],
        };
        assert!(check_batch(&p, &null_numeric_key).is_err());
        let short = Batch {
            columns: vec![
                ColumnData::Text(text(&[Some("a")])),
                ColumnData::Numeric(text(&[])),
                ColumnData::Numeric(text(&[None])),
            ],
        };
        assert!(check_batch(&p, &short).is_err());
        let wrong_type = Batch {
            columns: vec![
                ColumnData::Text(text(&[Some("a")])),
                ColumnData::Text(text(&[Some("1")])),
                ColumnData::Numeric(text(&[None])),
            ],
        };
        assert!(check_batch(&p, &wrong_type).is_err());
    }

    #[test]
    fn dedup_keeps_the_last_row_of_each_key() {
        let s = spec(&["k", "n"]);
        let p = prepare(&s).unwrap();
        let batch = Batch {
            columns: vec![
                ColumnData::Text(text(&[None, Some(""), Some("a"), Some("a"), Some("b")])),
                ColumnData::Numeric(text(&[
                    Some("1"),
                    Some("1.0"),
                    Some("2.50"),
                    Some("+002.5"),
                    Some("2.5"),
                ])),
                ColumnData::Numeric(text(&[None, None, None, None, None])),
            ],
        };
        let keys = crate::store::fingerprint::row_hashes(&p, &batch).keys;
        // By the key hashes, and with every hash equal (as if all keys collided): the same rows.
        for hashes in [keys, vec![7; 5]] {
            let (sel, dropped) = dedup(&p, &batch, &hashes);
            assert_eq!(dropped, 2);
            match sel {
                Selection::Rows(rows) => assert_eq!(rows, vec![1, 3, 4]),
                Selection::All(_) => panic!("expected a selection"),
            }
        }
        let unique = Batch {
            columns: vec![
                ColumnData::Text(text(&[Some("a"), Some("b")])),
                ColumnData::Numeric(text(&[Some("1"), Some("1")])),
                ColumnData::Numeric(text(&[None, None])),
            ],
        };
        let keys = crate::store::fingerprint::row_hashes(&p, &unique).keys;
        assert!(matches!(dedup(&p, &unique, &keys), (Selection::All(2), 0)));
        assert!(matches!(
            dedup(&p, &unique, &[1, 1]),
            (Selection::All(2), 0)
        ));
    }

    #[test]
    fn decimals_normalize() {
        assert_eq!(normalize_decimal("0012.3400"), (false, "12", "34"));
        assert_eq!(normalize_decimal("-0.000"), (false, "", ""));
        assert_eq!(normalize_decimal("-1"), (true, "1", ""));
        assert_eq!(normalize_decimal("1e5"), (false, "1e5", ""));
        assert_eq!(normalize_decimal(" 12.50 "), (false, "12", "5"));
        assert_eq!(normalize_decimal("\u{b}7\u{b}"), (false, "7", ""));
        assert_eq!(normalize_decimal("1.2.3"), (false, "1.2.3", ""));
        assert_eq!(normalize_decimal("."), (false, ".", ""));
        assert_eq!(normalize_decimal("-.50"), (true, "", "5"));
    }

    #[test]
    fn chunks_cover_the_selection() {
        let all = Selection::All(25);
        let sizes: Vec<usize> = all.chunks(10).iter().map(Chunk::len).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
        let rows = Selection::Rows(vec![1, 4, 7]);
        let got: Vec<usize> = rows.chunks(2).iter().flat_map(|c| c.rows()).collect();
        assert_eq!(got, vec![1, 4, 7]);
        assert!(Selection::All(0).chunks(10).is_empty());
    }
}
