//! Turning an API answer into typed, column-major rows for the store.
//!
//! Query API rows keep numbers exactly as the API wrote them (the JSON number's own text goes to a
//! NUMERIC column, never through a float). Anything a job did not name lands in `_extra`, so nothing
//! the API sent is lost; a value of an unexpected type is kept there too, and said in the log.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::json_row::{self, Field, Kind};
use super::split::{RowSink, RowSplitter};
use crate::config::{GenericJob, QueryJob};
use crate::store::{
    Batch, ColumnData, ColumnSpec, ColumnType, TableSpec, TextColumn, TypeMismatch,
};
use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;

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

/// The table of a Query API job: `(account_id, date, <dimensions>)` is the key.
pub fn query_table(table: &str, job: &QueryJob) -> TableSpec {
    let mut columns = vec![
        ColumnSpec {
            name: "account_id".into(),
            ty: ColumnType::Text,
        },
        ColumnSpec {
            name: "date".into(),
            ty: ColumnType::Date,
        },
    ];
    columns.extend(job.dimensions.iter().map(|d| ColumnSpec {
        name: d.clone(),
        ty: ColumnType::Text,
    }));
    columns.extend(job.metrics.iter().map(|m| ColumnSpec {
        name: m.clone(),
        ty: ColumnType::Numeric,
    }));
    columns.push(ColumnSpec {
        name: "currency".into(),
        ty: ColumnType::Text,
    });
    columns.push(ColumnSpec {
        name: "timezone".into(),
        ty: ColumnType::Text,
    });
    columns.push(ColumnSpec {
        name: EXTRA_COLUMN.into(),
        ty: ColumnType::Json,
    });
    let mut key = vec!["account_id".to_owned(), "date".to_owned()];
    key.extend(job.dimensions.iter().cloned());
    TableSpec {
        table: table.to_owned(),
        columns,
        key,
    }
}

/// Parses a Query API answer (`{"data": [...]}`) into a batch for [`query_table`]: a whole body
/// fed to a [`QueryStream`] at once.
pub fn query_rows(
    body: &[u8],
    job: &QueryJob,
    account_id: &str,
    timezone: Tz,
    currency: &str,
) -> Result<(Batch, Diversions), RowsError> {
    let mut stream = QueryStream::new(job, timezone);
    stream.write(body);
    stream.finish(account_id, currency)
}

/// A Query API answer parsed as its bytes arrive: each row goes straight into the column vectors
/// (no JSON tree, no map per row), and no more of the body than the piece at hand is kept, so a
/// window costs its typed columns and not its body as well.
pub struct QueryStream<'j> {
    job: &'j QueryJob,
    timezone: Tz,
    splitter: RowSplitter,
    builder: QueryBuilder<'j>,
}

impl<'j> QueryStream<'j> {
    pub fn new(job: &'j QueryJob, timezone: Tz) -> QueryStream<'j> {
        QueryStream::reusing(job, timezone, None)
    }

    /// Like [`QueryStream::new`], filling the columns of `spare` (a batch of the same job that
    /// was loaded already) instead of new ones: a window the size of the last one then needs no
    /// allocation for its columns, and the heap does not churn window after window. A batch of
    /// another shape is dropped.
    pub fn reusing(job: &'j QueryJob, timezone: Tz, spare: Option<Batch>) -> QueryStream<'j> {
        QueryStream {
            job,
            timezone,
            splitter: RowSplitter::default(),
            builder: QueryBuilder::new(job, timezone, spare),
        }
    }

    /// Reads the next piece of the answer. Returns `false` once the answer is found unusable (the
    /// reason comes from [`QueryStream::finish`]); later pieces are ignored.
    pub fn write(&mut self, piece: &[u8]) -> bool {
        if self.builder.error.is_some() {
            return false;
        }
        match self.splitter.feed(piece, &mut self.builder) {
            Ok(()) => true,
            Err(e) => {
                self.builder.error = Some(e);
                false
            }
        }
    }

    /// Forgets everything read so far (a retried request's answer starts again).
    pub fn reset(&mut self) {
        *self = QueryStream::new(self.job, self.timezone);
    }

    /// Checks that the answer was complete and well-formed, and returns its rows with the
    /// window's `account_id`, `currency` and `timezone`.
    pub fn finish(
        self,
        account_id: &str,
        currency: &str,
    ) -> Result<(Batch, Diversions), RowsError> {
        let QueryStream {
            timezone,
            splitter,
            mut builder,
            ..
        } = self;
        if let Some(e) = builder.error.take() {
            return Err(e);
        }
        splitter.finish()?;
        let n = builder.dates.len();
        let mut dates = builder.dates;
        if crate::store::loose(dates.capacity(), dates.len()) {
            dates.shrink_to_fit();
        }
        let shrunk = |mut c: TextColumn| {
            c.shrink_loose();
            c
        };
        let mut columns = Vec::with_capacity(5 + builder.dims.len() + builder.metrics.len());
        columns.push(ColumnData::Text(TextColumn::repeat(Some(account_id), n)));
        columns.push(ColumnData::Date(dates));
        columns.extend(
            builder
                .dims
                .into_iter()
                .map(|c| ColumnData::Text(shrunk(c))),
        );
        columns.extend(
            builder
                .metrics
                .into_iter()
                .map(|c| ColumnData::Numeric(shrunk(c))),
        );
        columns.push(ColumnData::Text(TextColumn::repeat(Some(currency), n)));
        columns.push(ColumnData::Text(TextColumn::repeat(
            Some(timezone.name()),
            n,
        )));
        columns.push(ColumnData::Json(shrunk(builder.extra)));
        Ok((Batch { columns }, builder.diversions))
    }
}

/// Column vectors being filled from a Query API answer.
struct QueryBuilder<'j> {
    job: &'j QueryJob,
    timezone: Tz,
    dates: Vec<Option<NaiveDate>>,
    dims: Vec<TextColumn>,
    metrics: Vec<TextColumn>,
    extra: TextColumn,
    /// Scratch space for one row's `_extra` object, reused.
    extra_text: String,
    /// The fields of the row being read, reused.
    fields: Vec<Field>,
    /// Scratch space for a string value with escapes, reused.
    unescaped: String,
    /// The previous row's field names, by position, and what each was.
    slots: Vec<(String, Slot)>,
    /// For the row being read: the position of each dimension and metric among its fields.
    dim_at: Vec<Option<usize>>,
    metric_at: Vec<Option<usize>>,
    /// The last `datetime` seen (raw JSON) and its day.
    last_day: Option<(String, NaiveDate)>,
    diversions: Diversions,
    /// The first row problem; parsing stops there.
    error: Option<RowsError>,
}

impl<'j> QueryBuilder<'j> {
    fn new(job: &'j QueryJob, timezone: Tz, spare: Option<Batch>) -> Self {
        let (dates, dims, metrics, extra) =
            spare.and_then(|b| reuse(job, b)).unwrap_or_else(|| {
                (
                    Vec::new(),
                    vec![TextColumn::new(); job.dimensions.len()],
                    vec![TextColumn::new(); job.metrics.len()],
                    TextColumn::new(),
                )
            });
        QueryBuilder {
            job,
            timezone,
            dates,
            dims,
            metrics,
            extra,
            extra_text: String::new(),
            fields: Vec::new(),
            unescaped: String::new(),
            slots: Vec::new(),
            dim_at: vec![None; job.dimensions.len()],
            metric_at: vec![None; job.metrics.len()],
            last_day: None,
            diversions: Diversions::default(),
            error: None,
        }
    }

    /// Adds one row, the object `text` whose fields are `self.fields`.
    fn push_row(&mut self, text: &str) -> Result<(), RowsError> {
        let row = self.dates.len();
        let job = self.job;
        let fields = std::mem::take(&mut self.fields);
        // Where each of the job's fields is in this row (the first occurrence wins).
        self.dim_at.fill(None);
        self.metric_at.fill(None);
        let mut datetime = None;
        let mut extra_fields: Vec<(Cow<'_, str>, &str)> = Vec::new();
        for (i, field) in fields.iter().enumerate() {
            let key = json_row::key_of(text, field);
            match self.slot_at(i, &key) {
                Slot::Datetime => {
                    datetime.get_or_insert(&text[field.value.clone()]);
                }
                Slot::Dim(d) => {
                    self.dim_at[d].get_or_insert(i);
                }
                Slot::Metric(m) => {
                    self.metric_at[m].get_or_insert(i);
                }
                Slot::Extra => extra_fields.push((key, &text[field.value.clone()])),
            }
        }
        let problem = match datetime {
            None => Some("has no `datetime` (the day of the row); was `interval` sent?".to_owned()),
            Some(raw) => match self.day(raw) {
                Ok(day) => match self.dim_at.iter().position(Option::is_none) {
                    Some(d) => Some(format!(
                        "has no `{}`, a dimension of this job (a key field)",
                        job.dimensions[d]
                    )),
                    None => {
                        self.dates.push(Some(day));
                        None
                    }
                },
                Err(m) => Some(m),
            },
        };
        if let Some(message) = problem {
            self.fields = fields;
            return Err(RowsError::Row { row, message });
        }
        for (at, column) in self.dim_at.iter().zip(self.dims.iter_mut()) {
            column.push(at.and_then(|i| text_of(text, &fields[i], &mut self.unescaped)));
        }
        for ((at, column), m) in self
            .metric_at
            .iter()
            .zip(self.metrics.iter_mut())
            .zip(&job.metrics)
        {
            match at.map(|i| &fields[i]) {
                None => column.push(None),
                Some(field) => match number_of(text, field, &mut self.unescaped) {
                    Ok(v) => column.push(v),
                    Err(()) => {
                        column.push(None);
                        extra_fields.push((Cow::Borrowed(m.as_str()), &text[field.value.clone()]));
                        *self.diversions.by_column.entry(m.clone()).or_default() += 1;
                    }
                },
            }
        }
        if extra_fields.is_empty() {
            self.extra.push(None);
        } else {
            json_object(&mut extra_fields, &mut self.extra_text);
            self.extra.push(Some(&self.extra_text));
        }
        drop(extra_fields);
        self.fields = fields;
        Ok(())
    }

    /// What the `i`th field of a row, named `key`, is. Rows of one answer list their fields in the
    /// same order, so the previous row's answer is tried first: one comparison instead of a search.
    fn slot_at(&mut self, i: usize, key: &str) -> Slot {
        if let Some((known, slot)) = self.slots.get(i)
            && known == key
        {
            return *slot;
        }
        let job = self.job;
        let slot = if key == "datetime" {
            Slot::Datetime
        } else if let Some(d) = job.dimensions.iter().position(|d| d == key) {
            Slot::Dim(d)
        } else if let Some(m) = job.metrics.iter().position(|m| m == key) {
            Slot::Metric(m)
        } else {
            Slot::Extra
        };
        match self.slots.get_mut(i) {
            Some(entry) => *entry = (key.to_owned(), slot),
            None => self.slots.push((key.to_owned(), slot)),
        }
        slot
    }

    /// The day of a `datetime` (its JSON text); the rows of a day share it, so the last one is
    /// remembered.
    fn day(&mut self, raw: &str) -> Result<NaiveDate, String> {
        if let Some((text, day)) = &self.last_day
            && text == raw
        {
            return Ok(*day);
        }
        let day = day_of(raw, self.timezone)?;
        match &mut self.last_day {
            Some((text, last)) => {
                text.clear();
                text.push_str(raw);
                *last = day;
            }
            None => self.last_day = Some((raw.to_owned(), day)),
        }
        Ok(day)
    }
}

impl RowSink for QueryBuilder<'_> {
    fn row(&mut self, text: &str, index: usize, at: usize) -> Result<Option<usize>, RowsError> {
        let len = json_row::parse_row(text, &mut self.fields).map_err(|e| RowsError::Row {
            row: index,
            message: format!(
                "is not what was expected (at byte {} of the answer): {}",
                at + e.at,
                e.message
            ),
        })?;
        let Some(len) = len else {
            return Ok(None);
        };
        self.push_row(&text[..len])?;
        Ok(Some(len))
    }
}

/// The emptied columns of a batch made by [`QueryStream::finish`] for `job`: dates, dimensions,
/// metrics and `_extra`; `None` when it has another shape.
#[allow(clippy::type_complexity)]
fn reuse(
    job: &QueryJob,
    batch: Batch,
) -> Option<(
    Vec<Option<NaiveDate>>,
    Vec<TextColumn>,
    Vec<TextColumn>,
    TextColumn,
)> {
    let (d, m) = (job.dimensions.len(), job.metrics.len());
    let mut columns = batch.columns;
    if columns.len() != 5 + d + m {
        return None;
    }
    // [account_id, date, dimensions.., metrics.., currency, timezone, _extra]
    let Some(ColumnData::Json(mut extra)) = columns.pop() else {
        return None;
    };
    let mut columns = columns.into_iter().skip(1);
    let Some(ColumnData::Date(mut dates)) = columns.next() else {
        return None;
    };
    let mut text = |n: usize, numeric: bool| -> Option<Vec<TextColumn>> {
        (0..n)
            .map(|_| match columns.next() {
                Some(ColumnData::Text(mut c)) if !numeric => {
                    c.clear();
                    Some(c)
                }
                Some(ColumnData::Numeric(mut c)) if numeric => {
                    c.clear();
                    Some(c)
                }
                _ => None,
            })
            .collect()
    };
    let dims = text(d, false)?;
    let metrics = text(m, true)?;
    dates.clear();
    extra.clear();
    Some((dates, dims, metrics, extra))
}

/// What a field of a Query API row is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Datetime,
    Dim(usize),
    Metric(usize),
    /// Not named by the job: kept in `_extra`.
    Extra,
}

/// A generic job's rows, with the table they need.
#[derive(Debug)]
pub struct GenericRows {
    pub spec: TableSpec,
    pub batch: Batch,
    pub diversions: Diversions,
}

/// Parses a generic job's answer: the array at `job.records`, one object per row.
///
/// Field names become snake_case columns (`groupByValue` → `group_by_value`) so analysts can write
/// plain SQL; types are inferred from the values (numbers NUMERIC, strings TEXT, booleans BOOLEAN,
/// objects and arrays JSONB). A field whose values mix types is widened to TEXT (numbers keep their
/// JSON text), or, for objects among scalars, kept whole in `_extra`.
pub fn generic_rows(
    body: &[u8],
    job: &GenericJob,
    table: &str,
    account_id: &str,
    window_start: NaiveDate,
) -> Result<GenericRows, RowsError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| RowsError::Shape(e.to_string()))?;
    let records = value.pointer(&job.records).ok_or_else(|| {
        RowsError::Shape(format!(
            "nothing at the JSON pointer `{}` (the job's `records`)",
            job.records
        ))
    })?;
    let records = match records {
        serde_json::Value::Array(items) => items.as_slice(),
        serde_json::Value::Null => &[],
        other => {
            return Err(RowsError::Shape(format!(
                "`{}` is {}, not an array of rows",
                job.records,
                kind_of(other)
            )));
        }
    };
    let mut objects = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        match r {
            serde_json::Value::Object(map) => objects.push(map),
            other => {
                return Err(RowsError::Row {
                    row: i,
                    message: format!("is {}, not an object", kind_of(other)),
                });
            }
        }
    }

    // Column order: key fields first, then the others by name (serde_json keeps object keys sorted).
    let mut fields: Vec<String> = job.key.clone();
    for obj in &objects {
        for k in obj.keys() {
            if !fields.contains(k) {
                fields.push(k.clone());
            }
        }
    }
    let reserved = [
        "account_id",
        "window_start",
        "_run_id",
        "_loaded_at",
        "_row_hash",
        EXTRA_COLUMN,
    ];
    let mut columns_of: Vec<(String, String, ColumnType)> = Vec::new(); // (field, column, type)
    let mut to_extra: Vec<String> = Vec::new();
    for f in &fields {
        let column = column_name(f);
        let is_key = job.key.contains(f);
        if column.is_empty()
            || (!is_key && reserved.contains(&column.as_str()))
            || columns_of.iter().any(|(_, c, _)| *c == column)
        {
            to_extra.push(f.clone());
            continue;
        }
        let ty = infer(objects.iter().filter_map(|o| o.get(f)));
        let ty = if is_key && ty == ColumnType::Json {
            ColumnType::Text
        } else {
            ty
        };
        columns_of.push((f.clone(), column, ty));
    }

    let n = objects.len();
    let mut data: Vec<ColumnData> = columns_of
        .iter()
        .map(|(_, _, ty)| match ty {
            ColumnType::Numeric => ColumnData::Numeric(TextColumn::new()),
            ColumnType::Boolean => ColumnData::Boolean(Vec::with_capacity(n)),
            ColumnType::Json => ColumnData::Json(TextColumn::new()),
            ColumnType::Date | ColumnType::Text => ColumnData::Text(TextColumn::new()),
        })
        .collect();
    let mut extra = TextColumn::new();
    let mut diversions = Diversions::default();
    for (i, obj) in objects.iter().enumerate() {
        let mut extra_map = serde_json::Map::new();
        for ((field, column, _), out) in columns_of.iter().zip(data.iter_mut()) {
            let value = obj.get(field);
            if job.key.contains(field) && value.is_none() {
                return Err(RowsError::Row {
                    row: i,
                    message: format!("has no `{field}`, a key field of this job"),
                });
            }
            let value = value.unwrap_or(&serde_json::Value::Null);
            let fits = push_value(out, value);
            if !fits {
                extra_map.insert(field.clone(), value.clone());
                *diversions.by_column.entry(column.clone()).or_default() += 1;
            }
        }
        for f in &to_extra {
            if let Some(v) = obj.get(f) {
                extra_map.insert(f.clone(), v.clone());
            }
        }
        extra.push(
            (!extra_map.is_empty())
                .then(|| serde_json::Value::Object(extra_map).to_string())
                .as_deref(),
        );
    }

    let mut spec_columns = vec![
        ColumnSpec {
            name: "account_id".into(),
            ty: ColumnType::Text,
        },
        ColumnSpec {
            name: "window_start".into(),
            ty: ColumnType::Date,
        },
    ];
    spec_columns.extend(columns_of.iter().map(|(_, c, ty)| ColumnSpec {
        name: c.clone(),
        ty: *ty,
    }));
    spec_columns.push(ColumnSpec {
        name: EXTRA_COLUMN.into(),
        ty: ColumnType::Json,
    });
    let mut key = vec!["account_id".to_owned(), "window_start".to_owned()];
    key.extend(job.key.iter().map(|k| column_name(k)));

    let mut columns = Vec::with_capacity(data.len() + 3);
    columns.push(ColumnData::Text(TextColumn::repeat(Some(account_id), n)));
    columns.push(ColumnData::Date(vec![Some(window_start); n]));
    columns.extend(data);
    columns.push(ColumnData::Json(extra));
    Ok(GenericRows {
        spec: TableSpec {
            table: table.to_owned(),
            columns: spec_columns,
            key,
        },
        batch: Batch { columns },
        diversions,
    })
}

/// Makes a generic job's batch fit a table whose columns already have other types than this batch
/// inferred (a field that was a number yesterday and is a string today, or the other way round).
///
/// The table wins, nothing is converted behind the analyst's back, and nothing is lost: a value the
/// existing column can hold exactly goes there (a number into a text column keeps its JSON text);
/// any other value is kept in `_extra` under its field name and counted in `diversions`.
pub fn conform(rows: &mut GenericRows, mismatches: &[TypeMismatch]) {
    let Some(extra_at) = rows
        .spec
        .columns
        .iter()
        .position(|c| c.name == EXTRA_COLUMN)
    else {
        return;
    };
    for m in mismatches {
        let Some(i) = rows.spec.columns.iter().position(|c| c.name == m.column) else {
            continue;
        };
        if rows.spec.key.contains(&m.column) {
            continue; // a key column keeps its type; a value it cannot hold fails the window
        }
        let n = rows.batch.columns[i].len();
        let old = std::mem::replace(&mut rows.batch.columns[i], ColumnData::Boolean(Vec::new()));
        let mut moved: Vec<(usize, serde_json::Value)> = Vec::new();
        let new = match m.existing_type {
            Some(ColumnType::Text) => ColumnData::Text(
                (0..n)
                    .map(|r| {
                        cell_as_json(&old, r).map(|v| match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        })
                    })
                    .collect(),
            ),
            Some(ColumnType::Numeric) => ColumnData::Numeric(
                (0..n)
                    .map(|r| match cell_as_json(&old, r) {
                        None => None,
                        Some(serde_json::Value::Number(x)) => Some(x.to_string()),
                        Some(serde_json::Value::String(s)) if is_decimal(s.trim()) => {
                            Some(s.trim().to_owned())
                        }
                        Some(other) => {
                            moved.push((r, other));
                            None
                        }
                    })
                    .collect(),
            ),
            Some(ColumnType::Boolean) => ColumnData::Boolean(
                (0..n)
                    .map(|r| match cell_as_json(&old, r) {
                        None => None,
                        Some(serde_json::Value::Bool(b)) => Some(b),
                        Some(other) => {
                            moved.push((r, other));
                            None
                        }
                    })
                    .collect(),
            ),
            Some(ColumnType::Json) => ColumnData::Json(
                (0..n)
                    .map(|r| cell_as_json(&old, r).map(|v| v.to_string()))
                    .collect(),
            ),
            Some(ColumnType::Date) | None => {
                for r in 0..n {
                    if let Some(v) = cell_as_json(&old, r) {
                        moved.push((r, v));
                    }
                }
                match m.existing_type {
                    Some(ColumnType::Date) => ColumnData::Date(vec![None; n]),
                    _ => ColumnData::Text(TextColumn::repeat(None, n)),
                }
            }
        };
        rows.batch.columns[i] = new;
        if let Some(t) = m.existing_type {
            rows.spec.columns[i].ty = t;
        }
        if !moved.is_empty() {
            *rows
                .diversions
                .by_column
                .entry(m.column.clone())
                .or_default() += moved.len();
            if let ColumnData::Json(extra) = &mut rows.batch.columns[extra_at] {
                let mut moved = moved.into_iter().peekable();
                let mut merged = TextColumn::new();
                for (r, old) in extra.iter().enumerate() {
                    match moved.next_if(|(m, _)| *m == r) {
                        None => merged.push(old),
                        Some((_, value)) => {
                            let mut map = old
                                .and_then(|t| {
                                    serde_json::from_str::<
                                        serde_json::Map<String, serde_json::Value>,
                                    >(t)
                                    .ok()
                                })
                                .unwrap_or_default();
                            map.insert(m.column.clone(), value);
                            merged.push(Some(&serde_json::Value::Object(map).to_string()));
                        }
                    }
                }
                *extra = merged;
            }
        }
    }
}

/// One cell of a column as JSON (None for NULL).
fn cell_as_json(column: &ColumnData, row: usize) -> Option<serde_json::Value> {
    use serde_json::Value;
    match column {
        ColumnData::Text(v) => v.get(row).map(|s| Value::String(s.to_owned())),
        ColumnData::Numeric(v) | ColumnData::Json(v) => v
            .get(row)
            .map(|s| serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()))),
        ColumnData::Boolean(v) => v[row].map(Value::Bool),
        ColumnData::Date(v) => v[row].map(|d| Value::String(d.to_string())),
    }
}

/// `groupByValue` → `group_by_value`; anything not `[a-z0-9_]` becomes `_`; at most 63 bytes.
pub fn column_name(field: &str) -> String {
    let mut out = String::with_capacity(field.len() + 4);
    let mut prev_lower = false;
    for c in field.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
            prev_lower = true;
        } else {
            if !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    let trimmed = out.trim_matches('_');
    let mut name = if trimmed.starts_with(|c: char| c.is_ascii_digit()) {
        format!("f_{trimmed}")
    } else {
        trimmed.to_owned()
    };
    name.truncate(63);
    name
}

fn infer<'a>(values: impl Iterator<Item = &'a serde_json::Value>) -> ColumnType {
    use serde_json::Value;
    let mut seen: Option<ColumnType> = None;
    for v in values {
        let ty = match v {
            Value::Null => continue,
            Value::Bool(_) => ColumnType::Boolean,
            Value::Number(_) => ColumnType::Numeric,
            Value::String(_) => ColumnType::Text,
            Value::Array(_) | Value::Object(_) => ColumnType::Json,
        };
        seen = Some(match (seen, ty) {
            (None, t) => t,
            (Some(s), t) if s == t => s,
            // A scalar among objects/arrays, or the other way round: the scalar type wins and the
            // odd values are kept whole in _extra.
            (Some(ColumnType::Json), t) => t,
            (Some(s), ColumnType::Json) => s,
            // Mixed scalars widen to text (numbers keep their JSON text).
            (Some(_), _) => ColumnType::Text,
        });
    }
    seen.unwrap_or(ColumnType::Text)
}

/// Appends `value` to `out`; returns false (and appends NULL) when it does not fit the column.
fn push_value(out: &mut ColumnData, value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (out, value) {
        (ColumnData::Text(v), Value::Null)
        | (ColumnData::Numeric(v), Value::Null)
        | (ColumnData::Json(v), Value::Null) => v.push(None),
        (ColumnData::Boolean(v), Value::Null) => v.push(None),
        (ColumnData::Date(v), Value::Null) => v.push(None),
        (ColumnData::Text(v), Value::String(s)) => v.push(Some(s)),
        (ColumnData::Text(v), Value::Number(n)) => v.push(Some(&n.to_string())),
        (ColumnData::Text(v), Value::Bool(b)) => v.push(Some(if *b { "true" } else { "false" })),
        (ColumnData::Numeric(v), Value::Number(n)) => v.push(Some(&n.to_string())),
        (ColumnData::Boolean(v), Value::Bool(b)) => v.push(Some(*b)),
        (ColumnData::Json(v), Value::Array(_) | Value::Object(_)) => {
            v.push(Some(&value.to_string()))
        }
        (ColumnData::Text(v) | ColumnData::Numeric(v) | ColumnData::Json(v), _) => {
            v.push(None);
            return false;
        }
        (ColumnData::Boolean(v), _) => {
            v.push(None);
            return false;
        }
        (ColumnData::Date(v), _) => {
            v.push(None);
            return false;
        }
    }
    true
}

/// The report day of a Query API `datetime`.
///
/// Rokt documents it as "the start of the calendar day in the report's time zone". If it reads as a
/// midnight, the date part is that day whatever offset is attached; otherwise the instant is moved
/// into the report's time zone first.
fn day_of(raw: &str, timezone: Tz) -> Result<NaiveDate, String> {
    let text = match raw.as_bytes().first() {
        Some(b'"') => string_of(raw),
        _ => None,
    }
    .ok_or_else(|| format!("`datetime` is {raw}, not a string"))?;
    let bad =
        || format!("`datetime` \"{text}\" is not a date-time such as \"2026-03-04T00:00:00Z\"");
    if text.len() == 10 {
        return NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|_| bad());
    }
    let date_part = text.get(..10).ok_or_else(bad)?;
    let date = NaiveDate::parse_from_str(date_part, "%Y-%m-%d").map_err(|_| bad())?;
    let time_part = text.get(11..19).unwrap_or("");
    if time_part == "00:00:00" {
        return Ok(date);
    }
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&timezone).date_naive())
        .map_err(|_| bad())
}

/// A dimension value as text: strings unescaped, numbers and booleans as written, null as None.
/// Borrowed from the row unless the string has escapes (then it is unescaped into `scratch`).
fn text_of<'a>(text: &'a str, field: &Field, scratch: &'a mut String) -> Option<&'a str> {
    let raw = &text[field.value.clone()];
    match field.kind {
        Kind::String { escaped } => {
            Some(json_row::unescape(&raw[1..raw.len() - 1], escaped, scratch))
        }
        Kind::Null => None,
        Kind::Number | Kind::Bool | Kind::Nested => Some(raw),
    }
}

/// The content of a JSON string literal `s` (already validated by the parser): borrowed when it
/// has no escapes.
fn string_of(s: &str) -> Option<Cow<'_, str>> {
    match s.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) if !inner.contains('\\') => Some(Cow::Borrowed(inner)),
        _ => serde_json::from_str::<String>(s).ok().map(Cow::Owned),
    }
}

/// A metric value as exact decimal text. Strings holding a number are accepted (some APIs quote
/// decimals); anything else does not fit.
fn number_of<'a>(
    text: &'a str,
    field: &Field,
    scratch: &'a mut String,
) -> Result<Option<&'a str>, ()> {
    match field.kind {
        Kind::Number => Ok(Some(&text[field.value.clone()])),
        Kind::Null => Ok(None),
        Kind::String { .. } => {
            let trimmed = text_of(text, field, scratch).ok_or(())?.trim();
            if is_decimal(trimmed) {
                Ok(Some(trimmed))
            } else {
                Err(())
            }
        }
        Kind::Bool | Kind::Nested => Err(()),
    }
}

fn is_decimal(s: &str) -> bool {
    serde_json::from_str::<serde_json::Number>(s).is_ok()
}

/// Writes `fields` (key, value's JSON text) as one JSON object, sorted by key, into `out` (cleared
/// first).
fn json_object(fields: &mut [(Cow<'_, str>, &str)], out: &mut String) {
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    out.clear();
    out.push('{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Serialising a string cannot fail.
        out.push_str(&serde_json::to_string(k).unwrap_or_default());
        out.push(':');
        out.push_str(v);
    }
    out.push('}');
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::template::Template;
    use crate::config::{Method, Report};

    fn job(dims: &[&str], metrics: &[&str]) -> QueryJob {
        QueryJob {
            report: Report::Campaigns,
            dimensions: dims.iter().map(|s| s.to_string()).collect(),
            metrics: metrics.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn texts(c: &ColumnData) -> Vec<Option<String>> {
        match c {
            ColumnData::Text(v) | ColumnData::Numeric(v) | ColumnData::Json(v) => {
                v.iter().map(|s| s.map(str::to_owned)).collect()
            }
            other => panic!("not a text column: {other:?}"),
        }
    }

    #[test]
    fn query_rows_keep_numbers_exact_and_unknown_fields_in_extra() {
        let body = br#"{"data":[
            {"campaign_id":"7","campaign_name":"Caf\u00e9 \"Spring\";\t\ud83d\ude80","impressions":12,"gross_cost":12345678901234567890.123456,"datetime":"2026-03-04T00:00:00Z","surprise":{"a":1}},
            {"campaign_id":8,"campaign_name":null,"impressions":"3.50","gross_cost":"n/a","datetime":"2026-03-05T00:00:00Z"}
        ],"accountId":"1","queryTimeMs":3}"#;
        let (batch, diversions) = query_rows(
            body,
            &job(
                &["campaign_id", "campaign_name"],
                &["impressions", "gross_cost"],
            ),
            "1",
            Tz::UTC,
            "USD",
        )
        .unwrap();
        let spec = query_table(
            "t",
            &job(
                &["campaign_id", "campaign_name"],
                &["impressions", "gross_cost"],
            ),
        );
        assert_eq!(batch.columns.len(), spec.columns.len());
        assert_eq!(
            spec.key,
            ["account_id", "date", "campaign_id", "campaign_name"]
        );
        let ColumnData::Date(dates) = &batch.columns[1] else {
            panic!()
        };
        assert_eq!(dates[0].unwrap().to_string(), "2026-03-04");
        assert_eq!(
            texts(&batch.columns[2]),
            [Some("7".into()), Some("8".into())],
            "a numeric id is kept as its text"
        );
        assert_eq!(
            texts(&batch.columns[3])[0].as_deref(),
            Some("Café \"Spring\";\t🚀")
        );
        assert_eq!(texts(&batch.columns[3])[1], None);
        assert_eq!(
            texts(&batch.columns[4]),
            [Some("12".into()), Some("3.50".into())]
        );
        assert_eq!(
            texts(&batch.columns[5])[0].as_deref(),
            Some("12345678901234567890.123456")
        );
        assert_eq!(
            texts(&batch.columns[5])[1],
            None,
            "a non-number metric is not forced into the column"
        );
        let extra = texts(&batch.columns[8]);
        assert_eq!(extra[0].as_deref(), Some(r#"{"surprise":{"a":1}}"#));
        assert_eq!(
            extra[1].as_deref(),
            Some(r#"{"gross_cost":"n/a"}"#),
            "…but kept in _extra"
        );
        assert_eq!(diversions.by_column.get("gross_cost"), Some(&1));
    }

    #[test]
    fn query_rows_report_missing_fields_and_bad_shapes() {
        let j = job(&["campaign_id"], &["impressions"]);
        let err = query_rows(
            br#"{"data":[{"impressions":1,"datetime":"2026-03-04T00:00:00Z"}]}"#,
            &j,
            "1",
            Tz::UTC,
            "USD",
        )
        .unwrap_err();
        assert_eq!(
            err,
            RowsError::Row {
                row: 0,
                message: "has no `campaign_id`, a dimension of this job (a key field)".into()
            }
        );
        let err = query_rows(
            br#"{"data":[{"campaign_id":"1","impressions":1}]}"#,
            &j,
            "1",
            Tz::UTC,
            "USD",
        )
        .unwrap_err();
        assert!(err.to_string().contains("datetime"), "{err}");
        assert!(matches!(
            query_rows(br#"{"rows":[]}"#, &j, "1", Tz::UTC, "USD"),
            Err(RowsError::Shape(_))
        ));
        assert!(matches!(
            query_rows(br#"{"data":[{"#, &j, "1", Tz::UTC, "USD"),
            Err(RowsError::Shape(_))
        ));
        let err =
            query_rows(b"{\"data\":[{\"a\":\"\xff\"}]}", &j, "1", Tz::UTC, "USD").unwrap_err();
        assert_eq!(
            err,
            RowsError::Shape("it is not UTF-8 (invalid byte at offset 15)".into())
        );
        let body = br#"{"data":[{"campaign_id":"1","datetime":"2026-03-04"},"x"]}"#;
        let err = query_rows(body, &j, "1", Tz::UTC, "USD").unwrap_err();
        let at = body.iter().position(|b| *b == b'x').unwrap() - 1;
        assert_eq!(
            err.to_string(),
            format!(
                "row 1 (counting from 0): is not what was expected (at byte {at} of the answer): \
                 the row is a string, not an object"
            )
        );
        let (empty, _) = query_rows(br#"{"data":[]}"#, &j, "1", Tz::UTC, "USD").unwrap();
        assert_eq!(empty.columns[0].len(), 0);
    }

    #[test]
    fn a_lone_surrogate_is_read_as_the_replacement_character() {
        // Valid JSON syntax that no UTF-8 text can hold: kept as U+FFFD rather than refused (which
        // would fail the window) or stored as NULL (as the serde-based reader did for a dimension).
        let body = br#"{"data":[{"campaign_id":"a\ud800b","x\udc00":1,"datetime":"2026-03-04"}]}"#;
        let j = job(&["campaign_id"], &[]);
        let (batch, _) = query_rows(body, &j, "1", Tz::UTC, "USD").unwrap();
        assert_eq!(texts(&batch.columns[2]), [Some("a\u{fffd}b".to_owned())]);
        assert_eq!(
            texts(batch.columns.last().unwrap()),
            [Some("{\"x\u{fffd}\":1}".to_owned())]
        );
    }

    #[test]
    fn fields_are_found_in_any_order_and_the_first_of_a_name_wins() {
        // Field order changes between rows; a name twice in a row; a repeated `datetime`.
        let body = br#"{"data":[
            {"campaign_id":"1","impressions":10,"datetime":"2026-03-04T00:00:00Z"},
            {"datetime":"2026-03-04T00:00:00Z","x":true,"impressions":20,"campaign_id":"2"},
            {"impressions":30,"campaign_id":"3","campaign_id":"dup","datetime":"2026-03-05T00:00:00Z"},
            {"campaign_id":"4","impressions":40,"datetime":"2026-03-04T00:00:00Z"}
        ]}"#;
        let j = job(&["campaign_id"], &["impressions"]);
        let (batch, _) = query_rows(body, &j, "1", Tz::UTC, "USD").unwrap();
        let texts_of = |i: usize| texts(&batch.columns[i]);
        let some = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        assert_eq!(texts_of(2), some(&["1", "2", "3", "4"]));
        assert_eq!(texts_of(3), some(&["10", "20", "30", "40"]));
        let ColumnData::Date(dates) = &batch.columns[1] else {
            panic!()
        };
        let days: Vec<String> = dates.iter().map(|d| d.unwrap().to_string()).collect();
        assert_eq!(
            days,
            ["2026-03-04", "2026-03-04", "2026-03-05", "2026-03-04"]
        );
        assert_eq!(
            texts_of(6),
            [None, Some(r#"{"x":true}"#.into()), None, None],
            "a repeated name is not an unknown field"
        );
    }

    #[test]
    fn an_answer_fed_in_pieces_gives_the_same_rows_and_a_reset_starts_over() {
        let body = br#"{"queryTimeMs":3,"data":[
            {"campaign_id":"7","impressions":12,"datetime":"2026-03-04T00:00:00Z"},
            {"campaign_id":"a\"]},","impressions":1.50,"datetime":"2026-03-05T00:00:00Z","x":[1]}
        ],"accountId":"1"}"#;
        let j = job(&["campaign_id"], &["impressions"]);
        let whole = query_rows(body, &j, "1", Tz::UTC, "USD").unwrap();
        assert_eq!(whole.0.rows(), 2);
        assert_eq!(texts(&whole.0.columns[2])[1].as_deref(), Some("a\"]},"));
        for size in [1, 7, 64] {
            let mut stream = QueryStream::new(&j, Tz::UTC);
            stream.write(&body[..60]);
            stream.reset();
            for piece in body.chunks(size) {
                assert!(stream.write(piece));
            }
            assert_eq!(
                stream.finish("1", "USD").unwrap(),
                whole,
                "pieces of {size}"
            );
        }
        let err = query_rows(
            br#"{"data":[{"campaign_id":"7","datetime":"2026-03-04"}, 5]}"#,
            &j,
            "1",
            Tz::UTC,
            "USD",
        )
        .unwrap_err();
        assert!(
            matches!(&err, RowsError::Row { row: 1, message } if message.contains("byte 54")),
            "{err}"
        );
    }

    #[test]
    fn a_reused_batch_gives_the_same_rows_as_new_columns() {
        let first = br#"{"data":[
            {"campaign_id":"7","impressions":12,"datetime":"2026-03-04T00:00:00Z","x":1},
            {"campaign_id":"8","impressions":null,"datetime":"2026-03-04T00:00:00Z"},
            {"campaign_id":"9","impressions":3,"datetime":"2026-03-05T00:00:00Z"}
        ]}"#;
        let second = br#"{"data":[
            {"campaign_id":"1","impressions":5,"datetime":"2026-04-01T00:00:00Z"},
            {"campaign_id":"1","impressions":6,"datetime":"2026-04-02T00:00:00Z"}
        ]}"#;
        let j = job(&["campaign_id"], &["impressions"]);
        let (used, _) = query_rows(first, &j, "1", Tz::UTC, "USD").unwrap();
        let fresh = query_rows(second, &j, "2", Tz::UTC, "EUR").unwrap();
        let mut stream = QueryStream::reusing(&j, Tz::UTC, Some(used.clone()));
        assert!(stream.write(second));
        let reused = stream.finish("2", "EUR").unwrap();
        assert_eq!(reused, fresh, "nothing of the first window may remain");
        // A batch of another job's shape is not reused, and does no harm.
        let other = job(&["campaign_id", "creative_id"], &["impressions"]);
        let mut stream = QueryStream::reusing(&other, Tz::UTC, Some(used));
        assert!(stream.write(br#"{"data":[{"campaign_id":"1","creative_id":"c","datetime":"2026-04-01T00:00:00Z"}]}"#));
        let (batch, _) = stream.finish("2", "EUR").unwrap();
        assert_eq!(batch.rows(), 1);
        assert_eq!(batch.columns.len(), 5 + 2 + 1);
    }

    #[test]
    fn the_report_day_follows_the_documented_midnight_convention() {
        let la = chrono_tz::America::Los_Angeles;
        assert_eq!(
            day_of("\"2026-03-04T00:00:00Z\"", la).unwrap().to_string(),
            "2026-03-04"
        );
        assert_eq!(
            day_of("\"2026-03-04T08:00:00Z\"", la).unwrap().to_string(),
            "2026-03-04"
        );
        assert_eq!(
            day_of("\"2026-03-04T07:00:00Z\"", la).unwrap().to_string(),
            "2026-03-03"
        );
        assert_eq!(
            day_of("\"2026-03-04\"", la).unwrap().to_string(),
            "2026-03-04"
        );
        assert!(day_of("\"yesterday\"", la).is_err());
        assert!(day_of("17", la).is_err());
    }

    fn generic(key: &[&str]) -> GenericJob {
        GenericJob {
            method: Method::Get,
            endpoint: Template::parse("/x/{account_id}").unwrap(),
            query: Vec::new(),
            body: None,
            records: "/data/items".into(),
            key: key.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn generic_rows_infer_types_and_snake_case_names() {
        let body = br#"{"data":{"items":[
            {"groupByValue":"a","grossCost":1.5,"active":true,"tags":["x"],"accountId":"9","mixed":1},
            {"groupByValue":"b","grossCost":null,"active":false,"tags":null,"mixed":"two"}
        ]}}"#;
        let day = NaiveDate::from_ymd_opt(2026, 3, 4).unwrap();
        let out = generic_rows(body, &generic(&["groupByValue"]), "t", "1", day).unwrap();
        let cols: Vec<(&str, ColumnType)> = out
            .spec
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.ty))
            .collect();
        assert_eq!(
            cols,
            [
                ("account_id", ColumnType::Text),
                ("window_start", ColumnType::Date),
                ("group_by_value", ColumnType::Text),
                ("active", ColumnType::Boolean),
                ("gross_cost", ColumnType::Numeric),
                ("mixed", ColumnType::Text),
                ("tags", ColumnType::Json),
                ("_extra", ColumnType::Json),
            ]
        );
        assert_eq!(
            out.spec.key,
            ["account_id", "window_start", "group_by_value"]
        );
        assert_eq!(
            texts(&out.batch.columns[5]),
            [Some("1".into()), Some("two".into())],
            "mixed scalars widen to text"
        );
        assert_eq!(
            texts(&out.batch.columns[7])[0].as_deref(),
            Some(r#"{"accountId":"9"}"#),
            "a field whose column name is taken is kept in _extra"
        );
    }

    #[test]
    fn generic_rows_report_missing_keys_and_wrong_shapes() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 4).unwrap();
        let err = generic_rows(
            br#"{"data":{"items":[{"x":1}]}}"#,
            &generic(&["id"]),
            "t",
            "1",
            day,
        )
        .unwrap_err();
        assert_eq!(
            err,
            RowsError::Row {
                row: 0,
                message: "has no `id`, a key field of this job".into()
            }
        );
        let err = generic_rows(br#"{"data":{}}"#, &generic(&["id"]), "t", "1", day).unwrap_err();
        assert!(err.to_string().contains("/data/items"), "{err}");
        let err = generic_rows(
            br#"{"data":{"items":[1]}}"#,
            &generic(&["id"]),
            "t",
            "1",
            day,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not an object"), "{err}");
        let empty = generic_rows(
            br#"{"data":{"items":[]}}"#,
            &generic(&["id"]),
            "t",
            "1",
            day,
        )
        .unwrap();
        assert_eq!(empty.batch.columns[0].len(), 0);
    }

    #[test]
    fn a_batch_conforms_to_the_types_the_table_already_has() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 4).unwrap();
        // Yesterday `cost` was a number and `label` a string; today they arrive the other way round.
        let body = br#"{"data":{"items":[{"id":"a","cost":"n/a","label":7},{"id":"b","cost":"2.5","label":8}]}}"#;
        let mut rows = generic_rows(body, &generic(&["id"]), "t", "1", day).unwrap();
        let mismatch = |column: &str, existing: ColumnType, wanted: ColumnType| TypeMismatch {
            column: column.into(),
            existing: format!("{existing:?}"),
            existing_type: Some(existing),
            wanted,
        };
        conform(
            &mut rows,
            &[
                mismatch("cost", ColumnType::Numeric, ColumnType::Text),
                mismatch("label", ColumnType::Text, ColumnType::Numeric),
            ],
        );
        let ty = |name: &str| {
            rows.spec
                .columns
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.ty)
        };
        assert_eq!(ty("cost"), Some(ColumnType::Numeric));
        assert_eq!(ty("label"), Some(ColumnType::Text));
        let at = |name: &str| {
            rows.spec
                .columns
                .iter()
                .position(|c| c.name == name)
                .unwrap()
        };
        assert_eq!(
            texts(&rows.batch.columns[at("cost")]),
            [None, Some("2.5".into())]
        );
        assert_eq!(
            texts(&rows.batch.columns[at("label")]),
            [Some("7".into()), Some("8".into())]
        );
        let extra = texts(&rows.batch.columns[at("_extra")]);
        assert_eq!(
            extra[0].as_deref(),
            Some(r#"{"cost":"n/a"}"#),
            "kept, not lost"
        );
        assert_eq!(extra[1], None);
        assert_eq!(rows.diversions.by_column.get("cost"), Some(&1));
    }

    #[test]
    fn column_names_are_safe_identifiers() {
        assert_eq!(column_name("groupByValue"), "group_by_value");
        assert_eq!(
            column_name("acquisitionsByReferralDate"),
            "acquisitions_by_referral_date"
        );
        assert_eq!(column_name("already_snake"), "already_snake");
        assert_eq!(column_name("Cost (USD)"), "cost_usd");
        assert_eq!(column_name("3d"), "f_3d");
        assert_eq!(column_name("\"; DROP"), "drop");
    }
}
