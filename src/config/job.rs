//! One `[[jobs]]` entry: its identity (name, schedule, accounts, table), the values it inherits
//! from `[defaults]`, and its kind: a Query API report or a generic endpoint with templates.
//!
//! Apart from the sections (`parse.rs`) because a job is most of the format and most of its rules
//! (column names, reserved tables, placeholders, JSON pointers) concern nothing else.

use std::collections::HashSet;
use std::time::Duration;

use toml::de::DeValue;

use super::account_id;
use super::context::{Cx, Invalid, Item, Span, Tbl, join};
use super::keys::{self, Place, Section};
use super::template::Template;
use super::values::{Values, is_identifier};
use super::{Accounts, BodyTemplate, GenericJob, Job, JobKind, Method, QueryJob, Report};
use crate::schedule::Schedule;

/// Postgres' system columns: no table can have a column of one of these names.
pub const SYSTEM_COLUMNS: &[&str] = &["ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "oid"];

/// Columns every job table has; a dimension, metric or key field may not take these names (nor a
/// system column's).
const RESERVED_COLUMNS: &[&str] = &[
    "account_id",
    "date",
    "window_start",
    "currency",
    "timezone",
    "_run_id",
    "_loaded_at",
    "_row_hash",
    "_extra",
];
/// Tables the tool owns besides the job tables.
const RESERVED_TABLES: &[&str] = &[
    "export_runs",
    "export_state",
    "export_checks",
    "_sqlx_migrations",
];

impl Cx<'_> {
    /// One job, with `[defaults]` applied. Every key is read before the job is given up on.
    pub(super) fn job(
        &mut self,
        t: &Tbl<'_, '_>,
        span: Span,
        defaults: &Values,
    ) -> Result<Job, Invalid> {
        let allowed = self.allowed(Section::Jobs);
        self.check_keys(t.table, &t.path, &allowed);

        let name = self.job_name(t, span.clone());
        let schedule = self.schedule(t, span.clone());
        let accounts = self.accounts(t, span.clone());
        let values = self.values(Some(t), Section::Jobs, Some(defaults));
        let table = self.table_name(t, name.as_ref().ok());
        let kind = self.kind(t, span);
        if let (Ok(JobKind::Generic(_)), Some(item)) = (&kind, t.table.get("verify"))
            && matches!(item.get_ref(), DeValue::Boolean(true))
        {
            // Inherited from `[defaults]` it is simply not done; written on the job it would
            // promise what cannot be kept.
            self.problem(
                Some(item.span()),
                &join(&t.path, "verify"),
                "`verify` checks Query API jobs only (a generic job's fields have no catalogue \
                 saying which of them add up); remove it from this job",
            );
        }

        let (name, _) = name?;
        // The scalar keys come from `values` (given, inherited from `[defaults]`, or the key
        // table's default); the others have readers of their own above.
        Ok(Job {
            name,
            schedule: schedule?,
            timezone: self.get(&values, "timezone")?,
            currency: self.get(&values, "currency")?,
            lookback_days: self.get(&values, "lookback_days")?,
            window_days: self.get(&values, "window_days")?,
            window_timeout: Duration::from_secs(self.get(&values, "window_timeout_secs")?),
            start_date: self.get(&values, "start_date")?,
            accounts: accounts?,
            table: table?,
            run_on_start: self.get(&values, "run_on_start")?,
            verify: self.get(&values, "verify")?,
            kind: kind?,
        })
    }

    fn job_name(&mut self, t: &Tbl<'_, '_>, job_span: Span) -> Result<(String, Span), Invalid> {
        match self.string_at(t, "name")? {
            Some((n, span)) if is_job_name(&n) => Ok((n, span)),
            Some((n, span)) => Err(self.problem(
                Some(span),
                &join(&t.path, "name"),
                format!(
                    "\"{n}\" is not a valid job name; use letters, digits, `_` and `-` (at most \
                     63 characters)"
                ),
            )),
            None => Err(self.problem(
                Some(job_span),
                &join(&t.path, "name"),
                "every job needs a `name`",
            )),
        }
    }

    fn schedule(&mut self, t: &Tbl<'_, '_>, job_span: Span) -> Result<Schedule, Invalid> {
        let key = join(&t.path, "schedule");
        match self.string_at(t, "schedule")? {
            Some((s, span)) => Schedule::parse(&s)
                .map_err(|e| self.problem(Some(span), &key, format!("\"{s}\" {e}"))),
            None => Err(self.problem(
                Some(job_span),
                &key,
                "every job needs a `schedule` (5-field cron, e.g. \"15 5 * * *\")",
            )),
        }
    }

    /// `table`, or the job's name when it is left out (`name`: the job's name if it is valid).
    fn table_name(
        &mut self,
        t: &Tbl<'_, '_>,
        name: Option<&(String, Span)>,
    ) -> Result<String, Invalid> {
        let key = join(&t.path, "table");
        match self.string_at(t, "table")? {
            Some((table, _)) if is_table_name(&table) => Ok(table),
            Some((table, span)) => Err(self.problem(Some(span), &key, table_name_message(&table))),
            None => match name {
                Some((n, _)) if is_table_name(n) => Ok(n.clone()),
                Some((n, span)) => Err(self.problem(
                    Some(span.clone()),
                    &key,
                    format!(
                        "the job name \"{n}\" cannot be used as a table name; set `table` to a \
                         name of lower-case letters, digits and `_`"
                    ),
                )),
                // The name's own problem is reported already.
                None => Err(Invalid),
            },
        }
    }

    fn accounts(&mut self, t: &Tbl<'_, '_>, job_span: Span) -> Result<Accounts, Invalid> {
        let key = join(&t.path, "accounts");
        let Some(item) = t.table.get("accounts") else {
            return Err(self.problem(
                Some(job_span),
                &key,
                "every job needs `accounts`: a list of account ids such as [\"3141592\"], or \
                 \"all\"",
            ));
        };
        let list = match item.get_ref() {
            DeValue::String(s) if s.as_ref() == "all" => return Ok(Accounts::All),
            DeValue::Array(list) => list,
            DeValue::String(s) => {
                return Err(self.problem(
                    Some(item.span()),
                    &key,
                    format!(
                        "\"{s}\" is not valid here; write a list such as [\"{s}\"], or \"all\" for \
                         every account the credentials can read"
                    ),
                ));
            }
            other => {
                return Err(self.type_error(item, &key, "a list of account ids or \"all\"", other));
            }
        };
        if list.is_empty() {
            return Err(self.problem(
                Some(item.span()),
                &key,
                "is empty; list at least one account id, or write accounts = \"all\"",
            ));
        }
        let mut ids = Vec::new();
        let mut seen = HashSet::new();
        let mut result = Ok(());
        for (j, v) in list.iter().enumerate() {
            let entry = format!("{key}[{j}]");
            let id = match v.get_ref() {
                DeValue::String(s) => s.trim().to_owned(),
                DeValue::Integer(i) if i.radix() == 10 && !i.as_str().starts_with('-') => {
                    i.as_str().replace('_', "")
                }
                other => {
                    result = Err(self.type_error(v, &entry, "an account id string", other));
                    continue;
                }
            };
            if !account_id::is_account_id(&id) {
                result = Err(self.problem(
                    Some(v.span()),
                    &entry,
                    format!(
                        "{} is not an account id: an id is {}",
                        account_id::quote_id(&id),
                        account_id::ACCOUNT_ID_RULE
                    ),
                ));
            } else if !seen.insert(id.clone()) {
                result = Err(self.problem(
                    Some(v.span()),
                    &entry,
                    format!("account \"{id}\" is listed twice"),
                ));
            } else {
                ids.push(id);
            }
        }
        result.map(|()| Accounts::List(ids))
    }

    /// `report` makes a Query API job, `endpoint` a generic one; the other kind's keys are refused.
    fn kind(&mut self, t: &Tbl<'_, '_>, job_span: Span) -> Result<JobKind, Invalid> {
        let query_keys = keys::names_of(self.keys, Place::QueryJob);
        let generic_keys = keys::names_of(self.keys, Place::GenericJob);
        let present = |names: &[&'static str]| -> Vec<(&'static str, Span)> {
            names
                .iter()
                .filter_map(|k| t.table.get_key_value(*k).map(|(key, _)| (*k, key.span())))
                .collect()
        };
        if t.table.contains_key("report") {
            for (k, span) in present(&generic_keys) {
                self.problem(
                    Some(span),
                    &join(&t.path, k),
                    format!(
                        "`{k}` cannot be combined with `report`: a job is either a Query API report \
                         ({}) or a generic endpoint ({})",
                        query_keys.join(", "),
                        generic_keys.join(", ")
                    ),
                );
            }
            self.query_job(t).map(JobKind::Query)
        } else if t.table.contains_key("endpoint") {
            for (k, span) in present(&query_keys) {
                self.problem(
                    Some(span),
                    &join(&t.path, k),
                    format!(
                        "`{k}` belongs to Query API jobs (report = ...), not to a generic \
                         `endpoint` job"
                    ),
                );
            }
            self.generic_job(t, job_span).map(JobKind::Generic)
        } else {
            Err(self.problem(
                Some(job_span),
                &t.path,
                "a job needs either `report` (a Query API report: \"campaigns\" or \
                 \"transactions\") or `endpoint` (any other API path)",
            ))
        }
    }

    fn query_job(&mut self, t: &Tbl<'_, '_>) -> Result<QueryJob, Invalid> {
        let report = self.report(t);
        let dimensions = self.slugs(t, "dimensions", false);
        let metrics = self.slugs(t, "metrics", true);
        if let (Ok(d), Ok(m)) = (&dimensions, &metrics) {
            let mut seen = HashSet::new();
            if let Some(twice) = d.iter().chain(m).find(|s| !seen.insert(*s)) {
                let span = t.table.get("metrics").map(|i| i.span());
                return Err(self.problem(
                    span,
                    &join(&t.path, "metrics"),
                    format!(
                        "\"{twice}\" is named twice (as a dimension and a metric, or twice in one \
                         list); each column needs one meaning"
                    ),
                ));
            }
        }
        let (report, dimensions, metrics) = (report?, dimensions?, metrics?);
        let grain = self.query_key(t, &dimensions)?;
        let mut job = QueryJob::new(report, dimensions, metrics);
        if let Some(key) = grain {
            job.key = key;
        }
        Ok(job)
    }

    /// A Query API job's own `key`: a subset of its dimensions, each at most once. `None` when the
    /// job leaves it to the catalogue (its dimensions' grain).
    fn query_key(
        &mut self,
        t: &Tbl<'_, '_>,
        dimensions: &[String],
    ) -> Result<Option<Vec<String>>, Invalid> {
        let full = join(&t.path, "key");
        let Some(item) = t.table.get("key") else {
            return Ok(None);
        };
        let DeValue::Array(list) = item.get_ref() else {
            return Err(self.type_error(item, &full, "a list of dimension slugs", item.get_ref()));
        };
        if list.is_empty() && !dimensions.is_empty() {
            // The key would be the account and the day alone: every row of a day would be one
            // row, the last one winning.
            return Err(self.problem(
                Some(item.span()),
                &full,
                format!(
                    "is empty, which would keep one row per account and day of a job with \
                     dimensions; name the dimensions that identify a row (e.g. key = [\"{}\"]), \
                     or leave `key` out for the grain of its dimensions ({})",
                    dimensions[0],
                    dimensions.join(", ")
                ),
            ));
        }
        let mut key: Vec<String> = Vec::new();
        let mut result = Ok(());
        for (j, v) in list.iter().enumerate() {
            let entry = format!("{full}[{j}]");
            let DeValue::String(s) = v.get_ref() else {
                result = Err(self.type_error(v, &entry, "a dimension slug", v.get_ref()));
                continue;
            };
            if !dimensions.iter().any(|d| d == s.as_ref()) {
                let hint = super::suggest(s, dimensions.iter().map(String::as_str))
                    .map(|d| format!(" (did you mean \"{d}\"?)"))
                    .unwrap_or_default();
                result = Err(self.problem(
                    Some(v.span()),
                    &entry,
                    format!(
                        "\"{s}\" is not one of the job's dimensions{hint}; a Query API job's key \
                         names some of its `dimensions` ({})",
                        dimensions.join(", ")
                    ),
                ));
            } else if key.iter().any(|k| k == s.as_ref()) {
                result =
                    Err(self.problem(Some(v.span()), &entry, format!("\"{s}\" is listed twice")));
            } else {
                key.push(s.to_string());
            }
        }
        result.map(|()| Some(key))
    }

    fn report(&mut self, t: &Tbl<'_, '_>) -> Result<Report, Invalid> {
        // `kind` only calls this when `report` is there.
        let Some((r, span)) = self.string_at(t, "report")? else {
            return Err(Invalid);
        };
        Report::parse(&r).ok_or_else(|| {
            let hint = super::suggest(&r, Report::NAMES.iter().copied())
                .map(|s| format!(" (did you mean \"{s}\"?)"))
                .unwrap_or_default();
            self.problem(
                Some(span),
                &join(&t.path, "report"),
                format!(
                    "\"{r}\" is not a Query API report{hint}; valid reports are: {}",
                    Report::NAMES.join(", ")
                ),
            )
        })
    }

    /// A list of dimension or metric slugs; they become column names.
    fn slugs(
        &mut self,
        t: &Tbl<'_, '_>,
        key: &str,
        required: bool,
    ) -> Result<Vec<String>, Invalid> {
        let full = join(&t.path, key);
        let what = key.trim_end_matches('s');
        let Some(item) = t.table.get(key) else {
            if required {
                return Err(self.problem(
                    None,
                    &full,
                    format!(
                        "a Query API job needs `{key}`, e.g. {key} = [\"impressions\", \
                         \"referrals\", \"gross_cost\"]"
                    ),
                ));
            }
            return Ok(Vec::new());
        };
        let DeValue::Array(list) = item.get_ref() else {
            return Err(self.type_error(item, &full, "a list of strings", item.get_ref()));
        };
        if required && list.is_empty() {
            return Err(self.problem(
                Some(item.span()),
                &full,
                format!("is empty; name at least one {what}"),
            ));
        }
        let mut out = Vec::new();
        let mut result = Ok(());
        for (j, v) in list.iter().enumerate() {
            let entry = format!("{full}[{j}]");
            let DeValue::String(s) = v.get_ref() else {
                result = Err(self.type_error(v, &entry, "a string", v.get_ref()));
                continue;
            };
            if is_reserved_column(s) {
                result = Err(self.problem(
                    Some(v.span()),
                    &entry,
                    format!(
                        "\"{s}\" is a column every job table already has, or a Postgres system \
                         column ({}, {}); it cannot be a {what}",
                        RESERVED_COLUMNS.join(", "),
                        SYSTEM_COLUMNS.join(", ")
                    ),
                ));
            } else if is_column_name(s) {
                out.push(s.to_string());
            } else {
                result = Err(self.problem(
                    Some(v.span()),
                    &entry,
                    format!(
                        "\"{s}\" is not a Rokt slug; slugs are lower-case letters, digits and `_` \
                         such as \"campaign_id\" or \"gross_cost\""
                    ),
                ));
            }
        }
        result.map(|()| out)
    }

    fn generic_job(&mut self, t: &Tbl<'_, '_>, job_span: Span) -> Result<GenericJob, Invalid> {
        let method = self.method(t);
        let endpoint = self.endpoint(t);
        let query = self.query_params(t);
        let body = match t.table.get("body") {
            None => Ok(None),
            Some(item) if method == Ok(Method::Get) => Err(self.problem(
                Some(item.span()),
                &join(&t.path, "body"),
                "a body is only sent with method = \"POST\"",
            )),
            Some(item) => self.body(item, &join(&t.path, "body")).map(Some),
        };
        let records = self.records(t, job_span.clone());
        let key = self.key_fields(t, job_span.clone());
        let job = GenericJob {
            method: method?,
            endpoint: endpoint?,
            query: query?,
            body: body?,
            records: records?,
            key: key?,
        };
        if !job.uses_account() {
            return Err(self.problem(
                Some(job_span),
                &join(&t.path, "endpoint"),
                "no part of the request uses {account_id}: every account would fetch the same rows; \
                 put {account_id} in `endpoint`, `query` or `body`",
            ));
        }
        Ok(job)
    }

    fn method(&mut self, t: &Tbl<'_, '_>) -> Result<Method, Invalid> {
        let Some((m, span)) = self.string_at(t, "method")? else {
            let default =
                keys::default_word(self.keys, Section::Jobs, "method").and_then(Method::parse);
            return default.ok_or_else(|| self.internal(&t.path, "method"));
        };
        Method::parse(&m).ok_or_else(|| {
            self.problem(
                Some(span),
                &join(&t.path, "method"),
                format!(
                    "\"{m}\" is not supported; use {}",
                    keys::either(Method::NAMES, |w| format!("\"{w}\""))
                ),
            )
        })
    }

    fn endpoint(&mut self, t: &Tbl<'_, '_>) -> Result<Template, Invalid> {
        let key = join(&t.path, "endpoint");
        // `kind` only calls this when `endpoint` is there.
        let Some((e, span)) = self.string_at(t, "endpoint")? else {
            return Err(Invalid);
        };
        if !e.starts_with('/') {
            return Err(self.problem(
                Some(span),
                &key,
                format!(
                    "\"{e}\" must be a path starting with `/`, e.g. \
                     \"/reporting/accounts/{{account_id}}/campaigns/breakdown\"; the host comes \
                     from [api] base_url"
                ),
            ));
        }
        self.template(&e, span, &key)
    }

    fn records(&mut self, t: &Tbl<'_, '_>, job_span: Span) -> Result<String, Invalid> {
        let key = join(&t.path, "records");
        match self.string_at(t, "records")? {
            Some((r, _)) if r.is_empty() || r.starts_with('/') => Ok(r),
            Some((r, span)) => Err(self.problem(
                Some(span),
                &key,
                format!(
                    "\"{r}\" is not a JSON pointer; write it like \"/data/items\" (or \"\" when \
                     the answer is the array itself)"
                ),
            )),
            None => Err(self.problem(
                Some(job_span),
                &key,
                "a generic job needs `records`: the JSON pointer to the array of rows, e.g. \
                 \"/data/items\"",
            )),
        }
    }

    fn key_fields(&mut self, t: &Tbl<'_, '_>, job_span: Span) -> Result<Vec<String>, Invalid> {
        let full = join(&t.path, "key");
        let Some(item) = t.table.get("key") else {
            return Err(self.problem(
                Some(job_span),
                &full,
                "a generic job needs `key`: the fields that, with account_id and the window's \
                 first day, identify a row, e.g. key = [\"groupByValue\"]",
            ));
        };
        let list = match item.get_ref() {
            DeValue::Array(list) if !list.is_empty() => list,
            DeValue::Array(_) => {
                return Err(self.problem(
                    Some(item.span()),
                    &full,
                    "is empty; name the fields that identify a row, e.g. key = [\"groupByValue\"]",
                ));
            }
            other => return Err(self.type_error(item, &full, "a list of field names", other)),
        };
        let mut out: Vec<String> = Vec::new();
        let mut result = Ok(());
        for (j, v) in list.iter().enumerate() {
            let entry = format!("{full}[{j}]");
            let DeValue::String(s) = v.get_ref() else {
                result = Err(self.type_error(v, &entry, "a field name string", v.get_ref()));
                continue;
            };
            if s.is_empty() || s.len() > 63 || is_reserved_column(s) {
                result = Err(self.problem(
                    Some(v.span()),
                    &entry,
                    format!(
                        "\"{s}\" cannot be a key field: it must be 1 to 63 characters and not one \
                         of {}",
                        RESERVED_COLUMNS
                            .iter()
                            .chain(SYSTEM_COLUMNS)
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            } else if out.iter().any(|k| k == s.as_ref()) {
                result =
                    Err(self.problem(Some(v.span()), &entry, format!("\"{s}\" is listed twice")));
            } else {
                out.push(s.to_string());
            }
        }
        result.map(|()| out)
    }

    fn template(&mut self, text: &str, span: Span, key: &str) -> Result<Template, Invalid> {
        Template::parse(text).map_err(|e| self.problem(Some(span), key, e.to_string()))
    }

    fn query_params(&mut self, t: &Tbl<'_, '_>) -> Result<Vec<(String, Template)>, Invalid> {
        let Some(item) = t.table.get("query") else {
            return Ok(Vec::new());
        };
        let full = join(&t.path, "query");
        let DeValue::Table(params) = item.get_ref() else {
            return Err(self.type_error(
                item,
                &full,
                "a table of parameters, e.g. { currency = \"{currency}\" }",
                item.get_ref(),
            ));
        };
        let mut entries: Vec<_> = params.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        let mut out = Vec::new();
        let mut result = Ok(());
        for (k, v) in entries {
            let key = join(&full, k.get_ref());
            let text = match v.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Integer(i) => i.as_str().to_owned(),
                DeValue::Float(f) => f.as_str().to_owned(),
                DeValue::Boolean(b) => b.to_string(),
                other => {
                    result = Err(self.type_error(v, &key, "a string, number or boolean", other));
                    continue;
                }
            };
            match self.template(&text, v.span(), &key) {
                Ok(tpl) => out.push((k.get_ref().to_string(), tpl)),
                Err(e) => result = Err(e),
            }
        }
        result.map(|()| out)
    }

    fn body(&mut self, item: &Item<'_>, key: &str) -> Result<BodyTemplate, Invalid> {
        Ok(match item.get_ref() {
            DeValue::String(s) => BodyTemplate::String(self.template(s, item.span(), key)?),
            DeValue::Integer(i) => {
                match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                    Ok(n) => BodyTemplate::Number(n.into()),
                    Err(_) => {
                        return Err(self.problem(
                            Some(item.span()),
                            key,
                            format!("{} does not fit in 64 bits", i.as_str()),
                        ));
                    }
                }
            }
            DeValue::Float(f) => {
                let n = f.as_str().replace('_', "").parse::<f64>().ok();
                match n.and_then(serde_json::Number::from_f64) {
                    Some(n) => BodyTemplate::Number(n),
                    None => {
                        return Err(self.problem(Some(item.span()), key, "is not a finite number"));
                    }
                }
            }
            DeValue::Boolean(b) => BodyTemplate::Bool(*b),
            DeValue::Datetime(d) => {
                BodyTemplate::String(self.template(&d.to_string(), item.span(), key)?)
            }
            DeValue::Array(list) => {
                let mut out = Vec::new();
                let mut result = Ok(());
                for (j, v) in list.iter().enumerate() {
                    match self.body(v, &format!("{key}[{j}]")) {
                        Ok(b) => out.push(b),
                        Err(e) => result = Err(e),
                    }
                }
                result?;
                BodyTemplate::Array(out)
            }
            DeValue::Table(table) => {
                let mut entries: Vec<_> = table.iter().collect();
                entries.sort_by_key(|(k, _)| k.span().start);
                let mut out = Vec::new();
                let mut result = Ok(());
                for (k, v) in entries {
                    match self.body(v, &join(key, k.get_ref())) {
                        Ok(b) => out.push((k.get_ref().to_string(), b)),
                        Err(e) => result = Err(e),
                    }
                }
                result?;
                BodyTemplate::Object(out)
            }
        })
    }
}

fn is_column_name(s: &str) -> bool {
    is_identifier(s) && !s.starts_with('_')
}

/// Whether a Query API job may name `s` as a dimension or metric (a column name that is not one
/// of the columns every job table has): for `discover`, which writes jobs from what the API
/// lists.
pub(crate) fn is_usable_slug(s: &str) -> bool {
    is_column_name(s) && !RESERVED_COLUMNS.contains(&s)
}

fn is_table_name(s: &str) -> bool {
    is_identifier(s) && !RESERVED_TABLES.contains(&s)
}

fn table_name_message(name: &str) -> String {
    if RESERVED_TABLES.contains(&name) {
        format!(
            "\"{name}\" is one of the tool's own tables ({}); choose another name",
            RESERVED_TABLES.join(", ")
        )
    } else {
        format!(
            "\"{name}\" is not a safe SQL identifier; use lower-case letters, digits and `_`, \
             starting with a letter or `_`, at most 63 characters"
        )
    }
}

fn is_job_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether `name` is a column every job table has, or a Postgres system column.
fn is_reserved_column(name: &str) -> bool {
    RESERVED_COLUMNS.contains(&name) || SYSTEM_COLUMNS.contains(&name)
}
