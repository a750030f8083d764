//! Query API answers: the table a report job loads and the reader that turns an answer into its
//! typed columns while the bytes arrive.
//!
//! Query API rows keep numbers exactly as the API wrote them (the JSON number's own text goes to a
//! NUMERIC column, never through a float). Anything a job did not name lands in `_extra`, so nothing
//! the API sent is lost; a value of an unexpected type is kept there too, and said in the log.
//!
//! [`split`] follows the answer's outer `{"data": [...]}` across the pieces it arrives in and hands
//! each row to [`json_row`], a one-pass reader of a row object; [`QueryStream`] puts the fields of
//! each row into the column vectors.

mod json_row;
mod split;

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;

use super::rows::{EXTRA_COLUMN, Notes, RowsError, fits_numeric, is_decimal, storable_json};
use crate::config::QueryJob;
use crate::store::{Batch, ColumnData, ColumnSpec, ColumnType, TableSpec, TextColumn};
use json_row::{Field, Kind};
use split::{RowSink, RowSplitter};

/// The table of a Query API job: `(account_id, date, <its grain>)` is the key, where the grain is
/// the job's `key` (its dimensions but names beside their ids: see `catalogue`).
pub fn table_spec(table: &str, job: &QueryJob) -> TableSpec {
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
    key.extend(job.key.iter().cloned());
    let descriptive = job
        .dimensions
        .iter()
        .filter(|d| !job.key.contains(d))
        .cloned()
        .collect();
    TableSpec {
        table: table.to_owned(),
        columns,
        key,
        descriptive,
    }
}

/// Parses a Query API answer (`{"data": [...]}`) into a batch for [`table_spec`]: a whole body
/// fed to a [`QueryStream`] at once.
pub fn parse_answer(
    body: &[u8],
    job: &QueryJob,
    account_id: &str,
    timezone: Tz,
    currency: &str,
) -> Result<(Batch, Notes), RowsError> {
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
    pub fn finish(self, account_id: &str, currency: &str) -> Result<(Batch, Notes), RowsError> {
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
        Ok((Batch { columns }, builder.notes))
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
    notes: Notes,
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
            notes: Notes::default(),
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
        if fields.is_empty() {
            // `{}`: nothing to load (tap-rokt skips such rows too).
            self.notes.empty_rows += 1;
            self.fields = fields;
            return Ok(());
        }
        let problem = match datetime {
            None => Some("has no `datetime` (the day of the row); was `interval` sent?".to_owned()),
            Some(raw) => match self.day(raw) {
                Ok(day) => {
                    self.dates.push(Some(day));
                    None
                }
                Err(m) => Some(m),
            },
        };
        if let Some(message) = problem {
            self.fields = fields;
            return Err(RowsError::Row { row, message });
        }
        let mut lacking = false;
        for (at, name) in self.dim_at.iter().zip(&job.dimensions) {
            if at.is_none() {
                // Kept: a key dimension is stored as '' (see `store::ColumnData`), another NULL.
                lacking = true;
                *self.notes.missing.entry(name.clone()).or_default() += 1;
                if !job.key.contains(name) {
                    self.notes.missing_outside_key.insert(name.clone());
                }
            }
        }
        self.notes.rows_missing_dimension += usize::from(lacking);
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
                    Err(unfit) => {
                        column.push(None);
                        extra_fields.push((Cow::Borrowed(m.as_str()), &text[field.value.clone()]));
                        let counts = match unfit {
                            Unfit::Type => &mut self.notes.diverted,
                            Unfit::TooLarge => &mut self.notes.oversized,
                        };
                        *counts.entry(m.clone()).or_default() += 1;
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
        if let Some(after) = text.strip_prefix('[') {
            // `[]`: an empty row some answers hold (tap-rokt skips them); any other array is
            // refused below, as a row that is not an object.
            let inside = after.trim_start_matches([' ', '\t', '\n', '\r']);
            if inside.starts_with(']') {
                self.notes.empty_rows += 1;
                return Ok(Some(text.len() - inside.len() + 1));
            }
            if inside.is_empty() {
                return Ok(None); // the rest of `[ ...` is in the next piece
            }
        }
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

/// Why a metric value does not go to its numeric column.
enum Unfit {
    /// It is not a number.
    Type,
    /// It is a number Postgres' `numeric` cannot hold.
    TooLarge,
}

/// A metric value as exact decimal text. Strings holding a number are accepted (some APIs quote
/// decimals); anything else does not fit, and neither does a number too large for `numeric`.
fn number_of<'a>(
    text: &'a str,
    field: &Field,
    scratch: &'a mut String,
) -> Result<Option<&'a str>, Unfit> {
    let number = match field.kind {
        Kind::Number => &text[field.value.clone()],
        Kind::Null => return Ok(None),
        Kind::String { .. } => {
            let trimmed = text_of(text, field, scratch).ok_or(Unfit::Type)?.trim();
            if !is_decimal(trimmed) {
                return Err(Unfit::Type);
            }
            trimmed
        }
        Kind::Bool | Kind::Nested => return Err(Unfit::Type),
    };
    if fits_numeric(number) {
        Ok(Some(number))
    } else {
        Err(Unfit::TooLarge)
    }
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
        out.push_str(&storable_json(v));
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Report;

    fn job(dims: &[&str], metrics: &[&str]) -> QueryJob {
        QueryJob::new(
            Report::Campaigns,
            dims.iter().map(|s| s.to_string()).collect(),
            metrics.iter().map(|s| s.to_string()).collect(),
        )
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
        let (batch, notes) = parse_answer(
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
        let spec = table_spec(
            "t",
            &job(
                &["campaign_id", "campaign_name"],
                &["impressions", "gross_cost"],
            ),
        );
        assert_eq!(batch.columns.len(), spec.columns.len());
        assert_eq!(
            spec.key,
            ["account_id", "date", "campaign_id"],
            "a name beside its id is not part of the key"
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
        assert_eq!(notes.diverted.get("gross_cost"), Some(&1));
    }

    #[test]
    fn query_rows_report_missing_fields_and_bad_shapes() {
        let j = job(&["campaign_id"], &["impressions"]);
        let (rows, notes) = parse_answer(
            br#"{"data":[{"impressions":1,"datetime":"2026-03-04T00:00:00Z"}]}"#,
            &j,
            "1",
            Tz::UTC,
            "USD",
        )
        .unwrap();
        assert_eq!(rows.rows(), 1, "a row without a dimension is kept");
        assert_eq!(texts(&rows.columns[2]), [None]);
        assert_eq!(notes.missing.get("campaign_id"), Some(&1));
        assert_eq!(notes.rows_missing_dimension, 1);
        assert_eq!(
            notes.remarks(),
            [
                "1 row(s) had no `campaign_id`; they were kept with '' in its column (part of the key)"
            ]
        );
        // A name beside its id is no part of the key: stored NULL, and said so.
        let named = job(&["campaign_id", "campaign_name"], &["impressions"]);
        let (rows, notes) = parse_answer(
            br#"{"data":[{"impressions":1,"datetime":"2026-03-04T00:00:00Z"},
                {"campaign_id":"7","impressions":2,"datetime":"2026-03-04T00:00:00Z"}]}"#,
            &named,
            "1",
            Tz::UTC,
            "USD",
        )
        .unwrap();
        assert_eq!(rows.rows(), 2);
        assert_eq!(notes.rows_missing_dimension, 2, "rows, not dimensions");
        assert_eq!(
            notes.remarks(),
            [
                "1 row(s) had no `campaign_id`; they were kept with '' in its column (part of the key)",
                "2 row(s) had no `campaign_name`; they were kept with NULL in its column",
            ]
        );
        let err = parse_answer(
            br#"{"data":[{"campaign_id":"1","impressions":1}]}"#,
            &j,
            "1",
            Tz::UTC,
            "USD",
        )
        .unwrap_err();
        assert!(err.to_string().contains("datetime"), "{err}");
        let (none, _) = parse_answer(br#"{"accountId":"1"}"#, &j, "1", Tz::UTC, "USD").unwrap();
        assert_eq!(none.rows(), 0, "an answer without `data` has no rows");
        assert!(matches!(
            parse_answer(br#"{"message":"nope"}"#, &j, "1", Tz::UTC, "USD"),
            Err(RowsError::Refused(m)) if m == "nope"
        ));
        assert!(matches!(
            parse_answer(br#"{"data":[{"#, &j, "1", Tz::UTC, "USD"),
            Err(RowsError::Shape(_))
        ));
        let err =
            parse_answer(b"{\"data\":[{\"a\":\"\xff\"}]}", &j, "1", Tz::UTC, "USD").unwrap_err();
        assert_eq!(
            err,
            RowsError::Shape("it is not UTF-8 (invalid byte at offset 15)".into())
        );
        let body = br#"{"data":[{"campaign_id":"1","datetime":"2026-03-04"},"x"]}"#;
        let err = parse_answer(body, &j, "1", Tz::UTC, "USD").unwrap_err();
        let at = body.iter().position(|b| *b == b'x').unwrap() - 1;
        assert_eq!(
            err.to_string(),
            format!(
                "row 1 (counting from 0): is not what was expected (at byte {at} of the answer): \
                 the row is a string, not an object"
            )
        );
        let (empty, _) = parse_answer(br#"{"data":[]}"#, &j, "1", Tz::UTC, "USD").unwrap();
        assert_eq!(empty.columns[0].len(), 0);
    }

    #[test]
    fn empty_rows_are_skipped_and_counted_however_the_answer_is_cut() {
        let j = job(&["campaign_id"], &["impressions"]);
        let body = br#"{"data":[{}, [ ] ,{"campaign_id":"1","impressions":2,"datetime":"2026-03-04"},[],{ }]}"#;
        for size in [1, 2, 5, body.len()] {
            let mut stream = QueryStream::new(&j, Tz::UTC);
            for piece in body.chunks(size) {
                assert!(stream.write(piece));
            }
            let (rows, notes) = stream.finish("1", "USD").unwrap();
            assert_eq!(rows.rows(), 1, "pieces of {size}");
            assert_eq!(notes.empty_rows, 4, "pieces of {size}");
        }
        assert!(
            parse_answer(br#"{"data":[[1]]}"#, &j, "1", Tz::UTC, "USD").is_err(),
            "an array that is not empty is still no row"
        );
    }

    #[test]
    fn a_datetime_is_read_in_each_form_clients_have_seen() {
        let j = job(&["campaign_id"], &[]);
        for datetime in [
            "2026-03-04T00:00:00Z",
            "2026-03-04T00:00:00+00:00",
            "2026-03-04",
            "2026-03-04T00:00:00.000Z",
        ] {
            let body = format!(r#"{{"data":[{{"campaign_id":"1","datetime":"{datetime}"}}]}}"#);
            let (rows, _) =
                parse_answer(body.as_bytes(), &j, "1", Tz::America__Los_Angeles, "USD").unwrap();
            let ColumnData::Date(days) = &rows.columns[1] else {
                panic!()
            };
            assert_eq!(days[0].unwrap().to_string(), "2026-03-04", "{datetime}");
        }
    }

    #[test]
    fn a_lone_surrogate_is_read_as_the_replacement_character() {
        // Valid JSON syntax that no UTF-8 text can hold: kept as U+FFFD rather than refused (which
        // would fail the window) or stored as NULL (as the serde-based reader did for a dimension).
        let body = br#"{"data":[{"campaign_id":"a\ud800b","x\udc00":1,"datetime":"2026-03-04"}]}"#;
        let j = job(&["campaign_id"], &[]);
        let (batch, _) = parse_answer(body, &j, "1", Tz::UTC, "USD").unwrap();
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
        let (batch, _) = parse_answer(body, &j, "1", Tz::UTC, "USD").unwrap();
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
        let whole = parse_answer(body, &j, "1", Tz::UTC, "USD").unwrap();
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
        let err = parse_answer(
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
        let (used, _) = parse_answer(first, &j, "1", Tz::UTC, "USD").unwrap();
        let fresh = parse_answer(second, &j, "2", Tz::UTC, "EUR").unwrap();
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
}
