//! Row fingerprints: the `_row_hash` column, and the part of the table a window's rows can be in.
//!
//! A re-read of unchanged days is most of every run (`lookback_days`). Sending those rows to the
//! database only for `ON CONFLICT ... WHERE (old) IS DISTINCT FROM (new)` to drop them still costs
//! the server a lookup and a row lock each, as much as writing them. So every row carries a 128-bit
//! fingerprint of its values as they were written, and a window first reads back the fingerprints
//! of the stored rows it can touch (one index range scan: see [`scope`]), then sends only the rows
//! whose fingerprint is not among them: new rows and changed rows.
//!
//! The fingerprint is two halves. The high 64 bits are the row's *key hash*: XXH3-64 over its key
//! cells. The low 64 bits are the low half of XXH3-128 over all its cells. A cell is written as
//! (column name, type tag, canonical value), the non-null cells in column-name order. So it does
//! not change when the job lists its columns in another order, nor when a column is added that
//! the row has no value for; a decimal compares by value ("12.30" = "12.3", as `numeric` does); a
//! null text key is '' (as stored). XXH3 is fixed by its specification, so fingerprints written by
//! one release are valid for the next.
//!
//! The key half is what lets a window that replaces its days tell, from the fingerprints it read
//! anyway, which stored rows the answer no longer has ([`vanished`]): a stored fingerprint whose
//! key half is none of the answer's rows' key hashes belongs to a row whose key is gone, while a
//! stored row whose key is still there but whose values changed is an update. So a re-read sends a
//! `DELETE` only when a row really vanished.
//!
//! The layout changed once, on purpose: releases before the key half stored XXH3-128 of the cells
//! alone. Such a fingerprint equals no fingerprint of this layout, so the first re-read of each day
//! after upgrading sends that day's rows once more and rewrites their `_row_hash` (not their
//! values, `_run_id` or `_loaded_at`; not counted as written); an old fingerprint that stays after
//! that belongs to a row the answer no longer has, and is deleted.

use chrono::{Datelike as _, NaiveDate};
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use super::column::TextColumn;
use super::spec::{Prepared, ROW_HASH_COLUMN, normalize_decimal, quote};
use super::table::{Batch, ColumnData};

/// A set of fingerprints. They are uniformly distributed already, so a fast hasher is enough.
pub(super) type Fingerprints = std::collections::HashSet<u128, foldhash::fast::RandomState>;

/// The fingerprints of the stored rows of a part of a table, and how many rows there have none
/// (written by a release from before fingerprints).
#[derive(Debug, Default)]
pub(super) struct Stored {
    pub hashes: Fingerprints,
    pub unhashed: u64,
}

impl Stored {
    /// True when no row is stored there.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty() && self.unhashed == 0
    }

    /// How many rows are stored there.
    pub fn rows(&self) -> u64 {
        self.hashes.len() as u64 + self.unhashed
    }
}

/// The fingerprints of every row of a batch, by row number, and a hash of each row's key.
pub(super) struct RowHashes {
    /// `_row_hash`: the key hash, then the low half of XXH3-128 of the row's cells (see the
    /// module docs), as stored.
    pub values: Vec<uuid::Uuid>,
    /// XXH3-64 of the row's key cells in the same canonical form: rows with equal keys (as
    /// [`super::spec::dedup`] compares them) have equal key hashes.
    pub keys: Vec<u64>,
}

/// Computes [`RowHashes`] in one pass over the batch.
pub(super) fn row_hashes(prepared: &Prepared<'_>, batch: &Batch) -> RowHashes {
    let rows = batch.rows();
    let mut columns: Vec<Cells<'_>> = prepared
        .spec
        .columns
        .iter()
        .zip(&batch.columns)
        .enumerate()
        .map(|(i, (spec, data))| Cells::new(&spec.name, data, prepared.is_key(i)))
        .collect();
    columns.sort_by(|a, b| a.name.cmp(b.name));
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    let mut key: Vec<u8> = Vec::with_capacity(256);
    let mut out = RowHashes {
        values: Vec::with_capacity(rows),
        keys: Vec::with_capacity(rows),
    };
    for row in 0..rows {
        buf.clear();
        key.clear();
        for column in &columns {
            let at = buf.len();
            column.push(&mut buf, row);
            if column.is_key {
                key.extend_from_slice(&buf[at..]);
            }
        }
        let key_hash = xxh3_64(&key);
        out.values
            .push(uuid::Uuid::from_u128(fingerprint(key_hash, xxh3_128(&buf))));
        out.keys.push(key_hash);
    }
    out
}

/// A row's fingerprint: its key hash in the high half, the low half of its cells' XXH3-128 in the
/// low one.
fn fingerprint(key_hash: u64, cells: u128) -> u128 {
    (u128::from(key_hash) << 64) | (cells & u128::from(u64::MAX))
}

/// The key hash a fingerprint carries (its high half).
pub(super) fn key_hash(fingerprint: u128) -> u64 {
    u64::try_from(fingerprint >> 64).unwrap_or(u64::MAX)
}

/// The stored fingerprints whose row's key is not among the answer's (`answer_keys`: every row's
/// key hash, [`RowHashes::keys`]): the rows a window that replaces its days must delete. A stored
/// row whose key is in the answer is never among them, whatever its values: the upsert updates it.
/// A fingerprint of the layout before the key half (see the module docs) is among them; the
/// upsert rewrites those of rows still in the answer first, so deleting by it then removes only a
/// row that really vanished.
///
/// Two different keys with one 64-bit hash (about 1 in 2^64 per pair) would keep a vanished row;
/// they never delete a row of the answer.
pub(super) fn vanished(stored: &Fingerprints, answer_keys: &[u64]) -> Vec<u128> {
    if stored.is_empty() {
        return Vec::new();
    }
    let answer: std::collections::HashSet<u64, foldhash::fast::RandomState> =
        answer_keys.iter().copied().collect();
    stored
        .iter()
        .filter(|h| !answer.contains(&key_hash(**h)))
        .copied()
        .collect()
}

/// One column of a batch, read row by row into canonical cells.
struct Cells<'a> {
    name: &'a str,
    is_key: bool,
    /// The type tag (`t`ext, `j`son, `n`umeric, `d`ate, `b`oolean).
    tag: u8,
    /// What comes before a cell's value: the column's name and its type tag.
    head: Vec<u8>,
    values: Values<'a>,
}

enum Values<'a> {
    /// The same cell in every row, already written (empty: null in every row).
    Same(Vec<u8>),
    Text(&'a TextColumn),
    Json(&'a TextColumn),
    Numeric(&'a TextColumn),
    Date(&'a [Option<NaiveDate>]),
    Boolean(&'a [Option<bool>]),
}

impl<'a> Cells<'a> {
    fn new(name: &'a str, data: &'a ColumnData, is_key: bool) -> Cells<'a> {
        let tag = match data {
            ColumnData::Text(_) => b't',
            ColumnData::Json(_) => b'j',
            ColumnData::Numeric(_) => b'n',
            ColumnData::Date(_) => b'd',
            ColumnData::Boolean(_) => b'b',
        };
        let mut head = Vec::with_capacity(name.len() + 5);
        push_bytes(&mut head, name.as_bytes());
        head.push(tag);
        let values = match data {
            ColumnData::Text(v) => Values::Text(v),
            ColumnData::Json(v) => Values::Json(v),
            ColumnData::Numeric(v) => Values::Numeric(v),
            ColumnData::Date(v) => Values::Date(v),
            ColumnData::Boolean(v) => Values::Boolean(v),
        };
        let mut cells = Cells {
            name,
            is_key,
            tag,
            head,
            values,
        };
        // A column with one value in every row (`account_id`, `currency`, `_extra` when nothing
        // was extra) is written once.
        let same = match data {
            ColumnData::Text(v) | ColumnData::Json(v) | ColumnData::Numeric(v) if !v.is_empty() => {
                v.same()
            }
            _ => None,
        };
        if let Some(value) = same {
            let mut written = Vec::new();
            cells.push_value(&mut written, value);
            cells.values = Values::Same(written);
        }
        cells
    }

    /// Appends row `row`'s canonical cell; a null cell appends nothing (see the module docs).
    fn push(&self, buf: &mut Vec<u8>, row: usize) {
        match &self.values {
            Values::Same(written) => buf.extend_from_slice(written),
            Values::Text(v) | Values::Json(v) | Values::Numeric(v) => {
                self.push_value(buf, v.get(row));
            }
            Values::Date(v) => {
                if let Some(d) = v[row] {
                    buf.extend_from_slice(&self.head);
                    push_bytes(buf, &d.num_days_from_ce().to_le_bytes());
                }
            }
            Values::Boolean(v) => {
                if let Some(b) = v[row] {
                    buf.extend_from_slice(&self.head);
                    push_bytes(buf, &[u8::from(b)]);
                }
            }
        }
    }

    /// Appends a text-like cell (text, JSON or numeric text).
    fn push_value(&self, buf: &mut Vec<u8>, value: Option<&str>) {
        match value {
            Some(s) if self.tag == b'n' => {
                let (negative, int, frac) = normalize_decimal(s);
                buf.extend_from_slice(&self.head);
                push_bytes(buf, if negative { b"-" } else { b"+" });
                push_bytes(buf, int.as_bytes());
                push_bytes(buf, frac.as_bytes());
            }
            Some(s) => {
                buf.extend_from_slice(&self.head);
                push_bytes(buf, s.as_bytes());
            }
            // A null text key is stored as '', so it is fingerprinted as ''.
            None if self.tag == b't' && self.is_key => {
                buf.extend_from_slice(&self.head);
                push_bytes(buf, b"");
            }
            None => {}
        }
    }
}

/// Length-prefixed, so that no two different cell lists give the same bytes.
fn push_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// A condition on one key column that every row of a batch meets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Bound<'a> {
    /// `column = value`: the same text in every row (a null key is '').
    Text(&'a str, &'a str),
    /// `column = value`.
    Bool(&'a str, bool),
    /// `column BETWEEN first AND last` (equal when every row has the same day).
    Dates(&'a str, NaiveDate, NaiveDate),
}

/// `SELECT "_row_hash" FROM <table> WHERE <scope>` (null for rows without one), where `param(n)`
/// is the n-th placeholder (from 1); bind the scope's values in order (a date range binds two).
pub(super) fn stored_hashes_sql(
    table: &str,
    scope: &[Bound<'_>],
    param: impl Fn(usize) -> String,
) -> String {
    format!(
        "SELECT {} FROM {} WHERE {}",
        quote(ROW_HASH_COLUMN),
        quote(table),
        scope_sql(scope, param)
    )
}

/// The conditions of `scope` (`"account_id" = $1 AND "date" BETWEEN $2 AND $3`), with placeholders
/// `param(1)`, `param(2)`...: bind the scope's values in order (a date range binds two). The
/// number of placeholders used is [`scope_params`].
pub(super) fn scope_sql(scope: &[Bound<'_>], param: impl Fn(usize) -> String) -> String {
    let mut n = 0;
    let mut next = || {
        n += 1;
        param(n)
    };
    let conditions: Vec<String> = scope
        .iter()
        .map(|bound| match bound {
            Bound::Text(c, _) | Bound::Bool(c, _) => format!("{} = {}", quote(c), next()),
            Bound::Dates(c, _, _) => format!("{} BETWEEN {} AND {}", quote(c), next(), next()),
        })
        .collect();
    conditions.join(" AND ")
}

/// Binds the values of a scope (`&[Bound]`) to a sqlx query, in the order [`scope_sql`] placed
/// their placeholders.
macro_rules! bind_scope {
    ($query:expr, $scope:expr) => {{
        let mut query = $query;
        for bound in $scope {
            query = match *bound {
                $crate::store::fingerprint::Bound::Text(_, v) => query.bind(v),
                $crate::store::fingerprint::Bound::Bool(_, v) => query.bind(v),
                $crate::store::fingerprint::Bound::Dates(_, first, last) => {
                    query.bind(first).bind(last)
                }
            };
        }
        query
    }};
}
pub(super) use bind_scope;

/// How many placeholders [`scope_sql`] uses for `scope`.
pub(super) fn scope_params(scope: &[Bound<'_>]) -> usize {
    scope
        .iter()
        .map(|b| match b {
            Bound::Dates(..) => 2,
            Bound::Text(..) | Bound::Bool(..) => 1,
        })
        .sum()
}

/// Where the stored rows a batch can touch are: conditions on a leading run of its key columns
/// (the primary key's index serves them as one range scan). Walks the key in order, taking a
/// column whose value is the same in every row as an equality, and a date column as the range of
/// its days, where it stops. For a Query API window that is `account_id = $1 AND date BETWEEN $2
/// AND $3`; for a generic one `account_id = $1 AND window_start = $2`.
///
/// Empty when the first key column varies and is not a date (or the batch is empty): then there is
/// no cheap way to find the rows, and the batch is sent whole.
pub(super) fn scope<'a>(prepared: &Prepared<'a>, batch: &'a Batch) -> Vec<Bound<'a>> {
    let mut bounds = Vec::new();
    if batch.rows() == 0 {
        return bounds;
    }
    for &k in &prepared.key_idx {
        let name = prepared.spec.columns[k].name.as_str();
        match &batch.columns[k] {
            ColumnData::Text(v) => {
                let first = v.get(0).unwrap_or("");
                let same = v.same().is_some() || v.iter().all(|x| x.unwrap_or("") == first);
                if same {
                    bounds.push(Bound::Text(name, first));
                } else {
                    break;
                }
            }
            ColumnData::Boolean(v) => match v[0] {
                Some(first) if v.iter().all(|x| *x == Some(first)) => {
                    bounds.push(Bound::Bool(name, first));
                }
                _ => break,
            },
            ColumnData::Date(v) => {
                let days = v.iter().flatten();
                match (days.clone().min(), days.max()) {
                    (Some(&first), Some(&last)) if v.iter().all(Option::is_some) => {
                        bounds.push(Bound::Dates(name, first, last));
                        if first != last {
                            break; // a range: later key columns cannot narrow the index scan
                        }
                    }
                    _ => break,
                }
            }
            ColumnData::Numeric(_) | ColumnData::Json(_) => break,
        }
    }
    bounds
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::spec::prepare;
    use crate::store::{ColumnSpec, ColumnType, TableSpec};

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn text(values: &[Option<&str>]) -> ColumnData {
        ColumnData::Text(values.iter().map(|v| v.map(str::to_owned)).collect())
    }

    fn numeric(values: &[Option<&str>]) -> ColumnData {
        ColumnData::Numeric(values.iter().map(|v| v.map(str::to_owned)).collect())
    }

    /// A Query-API-shaped table: key (account_id, date, campaign), one metric, one optional text.
    fn spec(extra_columns: &[(&str, ColumnType)]) -> TableSpec {
        let mut columns = vec![
            ColumnSpec::new("account_id", ColumnType::Text),
            ColumnSpec::new("date", ColumnType::Date),
            ColumnSpec::new("campaign", ColumnType::Text),
            ColumnSpec::new("clicks", ColumnType::Numeric),
        ];
        columns.extend(extra_columns.iter().map(|(n, t)| ColumnSpec::new(*n, *t)));
        TableSpec {
            table: "t".into(),
            columns,
            key: vec!["account_id".into(), "date".into(), "campaign".into()],
            descriptive: Vec::new(),
        }
    }

    fn batch(clicks: &[Option<&str>]) -> Batch {
        let n = clicks.len();
        Batch {
            columns: vec![
                text(&vec![Some("A1"); n]),
                ColumnData::Date((0..n).map(|i| Some(day(1 + i as u32))).collect()),
                text(&vec![Some("c"); n]),
                numeric(clicks),
            ],
        }
    }

    fn hashes(spec: &TableSpec, batch: &Batch) -> Vec<u128> {
        row_hashes(&prepare(spec).unwrap(), batch)
            .values
            .iter()
            .map(uuid::Uuid::as_u128)
            .collect()
    }

    #[test]
    fn equal_values_equal_hashes_and_a_change_changes_it() {
        let s = spec(&[]);
        let a = hashes(&s, &batch(&[Some("10"), Some("10")]));
        let b = hashes(&s, &batch(&[Some("10"), Some("11")]));
        assert_eq!(a[0], b[0]);
        assert_ne!(a[1], b[1], "a changed metric must change the fingerprint");
        assert_ne!(a[0], a[1], "rows of different days differ");
    }

    #[test]
    fn decimals_compare_by_value_and_null_is_not_zero() {
        let s = spec(&[]);
        let h = hashes(&s, &batch(&[Some("12.30"), Some("12.3")]));
        let same_day = |clicks| hashes(&s, &batch(&[clicks]))[0];
        assert_eq!(same_day(Some("12.30")), same_day(Some("12.3")));
        assert_eq!(same_day(Some("-0.0")), same_day(Some("0")));
        assert_ne!(same_day(None), same_day(Some("0")));
        assert_ne!(same_day(Some("-1")), same_day(Some("1")));
        assert_ne!(h[0], h[1], "different days");
    }

    #[test]
    fn column_order_and_an_added_null_column_do_not_change_it() {
        let base = hashes(&spec(&[]), &batch(&[Some("5")]));
        let mut reordered = spec(&[]);
        reordered.columns.swap(2, 3);
        let mut b = batch(&[Some("5")]);
        b.columns.swap(2, 3);
        assert_eq!(hashes(&reordered, &b), base);

        let mut widened = batch(&[Some("5")]);
        widened.columns.push(text(&[None]));
        assert_eq!(hashes(&spec(&[("note", ColumnType::Text)]), &widened), base);
        let mut filled = batch(&[Some("5")]);
        filled.columns.push(text(&[Some("")]));
        assert_ne!(
            hashes(&spec(&[("note", ColumnType::Text)]), &filled),
            base,
            "'' in a value column is not null"
        );
    }

    #[test]
    fn values_cannot_run_into_each_other() {
        let s = spec(&[("a", ColumnType::Text), ("b", ColumnType::Text)]);
        let with = |a: &str, b: &str| {
            let mut batch = batch(&[None]);
            batch.columns.push(text(&[Some(a)]));
            batch.columns.push(text(&[Some(b)]));
            hashes(&s, &batch)[0]
        };
        assert_ne!(with("ab", "c"), with("a", "bc"));
    }

    #[test]
    fn a_null_text_key_is_the_empty_string() {
        let s = spec(&[]);
        let mut null_key = batch(&[Some("1")]);
        null_key.columns[2] = text(&[None]);
        let mut empty_key = batch(&[Some("1")]);
        empty_key.columns[2] = text(&[Some("")]);
        assert_eq!(hashes(&s, &null_key), hashes(&s, &empty_key));
    }

    #[test]
    fn fingerprints_are_stable_across_releases() {
        // Stored in every job table: a change here makes every row of every table look changed
        // once (it happened once, on purpose: the key half; see the module docs). The expected
        // value was computed apart from this code, with the system's libxxhash (0.8, through
        // Python's ctypes) over the bytes the module docs describe:
        //   key   = field(b"account_id", b"t", b"A1") + field(b"campaign", b"t", b"c")
        //           + field(b"date", b"d", i32le(739921))
        //   cells = field(b"account_id", b"t", b"A1") + field(b"campaign", b"t", b"c")
        //           + field(b"clicks", b"n", b"+", b"12", b"5") + field(b"date", b"d", i32le(739921))
        //   fingerprint = XXH3_64bits(key) << 64 | low64(XXH3_128bits(cells))
        // where field(name, tag, *parts) = u32le(len(name)) name tag (u32le(len(p)) p)...
        // The layout before the key half was XXH3_128bits(cells) whole:
        // 632392714bbe21ee8140f133b37b2227.
        let s = spec(&[]);
        let b = batch(&[Some("12.5")]);
        let h = hashes(&s, &b)[0];
        assert_eq!(format!("{h:032x}"), "8442feedf4386e588140f133b37b2227");
        let keys = row_hashes(&prepare(&s).unwrap(), &b).keys;
        assert_eq!(key_hash(h), keys[0], "the high half is the key hash");
    }

    fn fingerprints(hashes: &[u128]) -> Fingerprints {
        hashes.iter().copied().collect()
    }

    #[test]
    fn a_changed_row_keeps_its_key_half_and_is_no_deletion() {
        let s = spec(&[]);
        let p = prepare(&s).unwrap();
        let before = row_hashes(&p, &batch(&[Some("10"), Some("20")]));
        let after = row_hashes(&p, &batch(&[Some("11"), Some("20")]));
        let (old, new) = (before.values[0].as_u128(), after.values[0].as_u128());
        assert_ne!(old, new, "the values changed");
        assert_eq!(key_hash(old), key_hash(new), "the key did not");
        let stored = fingerprints(
            &before
                .values
                .iter()
                .map(|h| h.as_u128())
                .collect::<Vec<_>>(),
        );
        assert!(
            vanished(&stored, &after.keys).is_empty(),
            "every stored key is in the answer"
        );
    }

    #[test]
    fn a_stored_key_the_answer_lacks_has_vanished_and_nothing_else() {
        let s = spec(&[]);
        let p = prepare(&s).unwrap();
        // Three days stored; the answer has the first day changed and the third unchanged.
        let stored_rows = row_hashes(&p, &batch(&[Some("1"), Some("2"), Some("3")]));
        let stored = fingerprints(
            &stored_rows
                .values
                .iter()
                .map(|h| h.as_u128())
                .collect::<Vec<_>>(),
        );
        let mut answer = batch(&[Some("9"), Some("3")]);
        answer.columns[1] = ColumnData::Date(vec![Some(day(1)), Some(day(3))]);
        let answer = row_hashes(&p, &answer);
        assert_eq!(
            vanished(&stored, &answer.keys),
            vec![stored_rows.values[1].as_u128()],
            "day 2's row alone"
        );
        assert_eq!(
            vanished(&stored, &[]).len(),
            3,
            "an empty answer lacks every key"
        );
        assert!(vanished(&Fingerprints::default(), &answer.keys).is_empty());
    }

    #[test]
    fn a_fingerprint_of_the_old_layout_is_taken_for_vanished() {
        let s = spec(&[]);
        let p = prepare(&s).unwrap();
        let answer = row_hashes(&p, &batch(&[Some("12.5")]));
        // XXH3-128 of the cells alone, as releases before the key half stored it.
        let old_layout = 0x6323_9271_4bbe_21ee_8140_f133_b37b_2227_u128;
        assert_ne!(old_layout, answer.values[0].as_u128());
        assert_eq!(
            vanished(&fingerprints(&[old_layout]), &answer.keys),
            vec![old_layout],
            "a candidate; the upsert rewrites it first when its row is still there"
        );
    }

    #[test]
    fn scope_of_a_query_window_is_account_and_day_range() {
        let s = spec(&[]);
        let b = batch(&[Some("1"), Some("2"), Some("3")]);
        let p = prepare(&s).unwrap();
        assert_eq!(
            scope(&p, &b),
            vec![
                Bound::Text("account_id", "A1"),
                Bound::Dates("date", day(1), day(3))
            ]
        );
    }

    #[test]
    fn scope_of_a_single_day_continues_into_constant_keys() {
        let s = spec(&[]);
        let b = batch(&[Some("1")]);
        let p = prepare(&s).unwrap();
        assert_eq!(
            scope(&p, &b),
            vec![
                Bound::Text("account_id", "A1"),
                Bound::Dates("date", day(1), day(1)),
                Bound::Text("campaign", "c"),
            ]
        );
    }

    #[test]
    fn no_scope_when_the_first_key_varies_or_there_are_no_rows() {
        let s = spec(&[]);
        let mut b = batch(&[Some("1"), Some("2")]);
        b.columns[0] = text(&[Some("A1"), Some("A2")]);
        let p = prepare(&s).unwrap();
        assert!(scope(&p, &b).is_empty());
        assert!(scope(&p, &batch(&[])).is_empty());
    }
}
