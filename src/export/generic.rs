//! Generic jobs' answers: the array of rows at a JSON pointer, each row's fields as columns of
//! inferred types, and [`conform`] to the types a table already has.
//!
//! Answers of generic endpoints are small (a breakdown of one day), so they are parsed whole with
//! `serde_json`, unlike Query API answers (see [`super::query`]).

use chrono::NaiveDate;

use super::rows::{EXTRA_COLUMN, Notes, RowsError, is_decimal};
use crate::config::GenericJob;
use crate::store::{
    Batch, ColumnData, ColumnSpec, ColumnType, TableSpec, TextColumn, TypeMismatch,
};

/// A generic job's rows, with the table they need.
#[derive(Debug)]
pub struct GenericRows {
    pub spec: TableSpec,
    pub batch: Batch,
    pub notes: Notes,
}

/// The most columns an answer's fields become (key fields included); further fields are kept in
/// `_extra`. Postgres allows 1,600 columns a table, and an endpoint whose rows carry a new field each
/// time would otherwise add columns until it is refused.
pub const MAX_INFERRED_COLUMNS: usize = 200;

/// Parses a generic job's answer: the array at `job.records`, one object per row.
///
/// Field names become snake_case columns (`groupByValue` → `group_by_value`) so analysts can write
/// plain SQL; types are inferred from the values (numbers NUMERIC, strings TEXT, booleans BOOLEAN,
/// objects and arrays JSONB). A field whose values mix types is widened to TEXT (numbers keep their
/// JSON text), or, for objects among scalars, kept whole in `_extra`.
pub fn parse_answer(
    body: &[u8],
    job: &GenericJob,
    table: &str,
    account_id: &str,
    window_start: NaiveDate,
) -> Result<GenericRows, RowsError> {
    if super::rows::nests_too_deep(body) {
        return Err(RowsError::Shape(super::rows::too_deep()));
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| RowsError::Shape(e.to_string()))?;
    // Postgres text and jsonb cannot hold NUL: read as U+FFFD, not a window failing forever.
    super::rows::without_nul(&mut value);
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
    let mut seen: std::collections::HashSet<&str> = job.key.iter().map(String::as_str).collect();
    for obj in &objects {
        for k in obj.keys() {
            if seen.insert(k.as_str()) {
                fields.push(k.clone());
            }
        }
    }
    // The table's own columns, and Postgres' system columns (a column of that name cannot be made).
    let own = [
        "account_id",
        "window_start",
        "_run_id",
        "_loaded_at",
        "_row_hash",
        EXTRA_COLUMN,
    ];
    let reserved = |c: &str| own.contains(&c) || crate::config::SYSTEM_COLUMNS.contains(&c);
    let mut columns_of: Vec<(String, String, ColumnType)> = Vec::new(); // (field, column, type)
    let mut to_extra: Vec<String> = Vec::new();
    for f in &fields {
        let column = column_name(f);
        let is_key = job.key.contains(f);
        if column.is_empty()
            || (!is_key && reserved(&column))
            || columns_of.iter().any(|(_, c, _)| *c == column)
            || (!is_key && columns_of.len() >= MAX_INFERRED_COLUMNS)
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
    let mut notes = Notes::default();
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
                *notes.diverted.entry(column.clone()).or_default() += 1;
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
            descriptive: Vec::new(),
        },
        batch: Batch { columns },
        notes,
    })
}

/// Makes a generic job's batch fit a table whose columns already have other types than this batch
/// inferred (a field that was a number yesterday and is a string today, or the other way round).
///
/// The table wins, nothing is converted behind the analyst's back, and nothing is lost: a value the
/// existing column can hold exactly goes there (a number into a text column keeps its JSON text);
/// any other value is kept in `_extra` under its field name and counted in `notes`.
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
            *rows.notes.diverted.entry(m.column.clone()).or_default() += moved.len();
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
    use crate::config::Method;
    use crate::config::template::Template;

    fn texts(c: &ColumnData) -> Vec<Option<String>> {
        match c {
            ColumnData::Text(v) | ColumnData::Numeric(v) | ColumnData::Json(v) => {
                v.iter().map(|s| s.map(str::to_owned)).collect()
            }
            other => panic!("not a text column: {other:?}"),
        }
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
        let out = parse_answer(body, &generic(&["groupByValue"]), "t", "1", day).unwrap();
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
        let err = parse_answer(
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
        let err = parse_answer(br#"{"data":{}}"#, &generic(&["id"]), "t", "1", day).unwrap_err();
        assert!(err.to_string().contains("/data/items"), "{err}");
        let err = parse_answer(
            br#"{"data":{"items":[1]}}"#,
            &generic(&["id"]),
            "t",
            "1",
            day,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not an object"), "{err}");
        let empty = parse_answer(
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
        let mut rows = parse_answer(body, &generic(&["id"]), "t", "1", day).unwrap();
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
        assert_eq!(rows.notes.diverted.get("cost"), Some(&1));
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
