//! The Query API: `GET /v1/query/accounts`, `GET .../{report}/help` and the report endpoints
//! `POST /v1/query/accounts/{id}/campaigns/` (with the trailing slash) and `.../transactions`.
//!
//! Requests are checked in the order the real gateway and API do: bearer token (401), account
//! visible to the credentials (403), then the body (400 with a `message` naming the problem).
//! Answers are written straight into one string, row by row, so a 31-day window of 1,000 rows a day
//! never becomes a tree of `serde_json::Value`s.

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::NaiveDate;
use serde_json::Value;

use super::data::{Account, Catalog, Column, Dim, Group, MetricDef, Query, Report, currency_rate};
use super::slugs;
use super::{SharedRef, auth, json_response, message};

/// The longest range one query may cover, in days.
pub(crate) const MAX_RANGE_DAYS: i64 = 31;

/// `GET /v1/query/accounts`.
pub(crate) async fn accounts(State(shared): State<SharedRef>, headers: HeaderMap) -> Response {
    if let Some(r) = auth::reject_bearer(&shared, &headers) {
        return r;
    }
    let today = shared.today();
    let catalog = shared.catalog();
    let list: Vec<Value> = catalog
        .accounts()
        .iter()
        .map(|a| {
            serde_json::json!({
                "accountId": a.id,
                "accountName": a.name,
                "countryCode": a.country,
                "accountCurrencyCode": a.currency,
                "accountTimezone": a.timezone,
                "accountTimezoneOffset": timezone_offset_minutes(a.timezone, today),
                "accountOwner": a.owner,
            })
        })
        .collect();
    json_response(StatusCode::OK, Value::Array(list).to_string())
}

/// The UTC offset of a zone at noon UTC on `day`, in minutes east of UTC (`America/New_York`
/// in winter: -300; `Australia/Sydney` in March: 660). PostHog describes the field as minutes;
/// the sign (east positive, as ISO 8601 writes offsets) is the simulation's choice.
pub(crate) fn timezone_offset_minutes(zone: &str, day: NaiveDate) -> i64 {
    use chrono::{Offset as _, TimeZone as _};
    let Ok(tz) = zone.parse::<chrono_tz::Tz>() else {
        return 0;
    };
    let noon = day.and_hms_opt(12, 0, 0).unwrap_or_default();
    i64::from(tz.offset_from_utc_datetime(&noon).fix().local_minus_utc() / 60)
}

/// `GET /v1/query/accounts/{id}/campaigns/help`.
pub(crate) async fn campaigns_help(
    state: State<SharedRef>,
    path: Path<String>,
    headers: HeaderMap,
) -> Response {
    help(state, path, headers, Report::Campaigns)
}

/// `GET /v1/query/accounts/{id}/transactions/help`.
pub(crate) async fn transactions_help(
    state: State<SharedRef>,
    path: Path<String>,
    headers: HeaderMap,
) -> Response {
    help(state, path, headers, Report::Transactions)
}

fn help(
    State(shared): State<SharedRef>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    report: Report,
) -> Response {
    if let Some(r) = auth::reject_bearer(&shared, &headers) {
        return r;
    }
    let catalog = shared.catalog();
    let Some(account) = catalog.account(&account_id) else {
        return forbidden(&account_id);
    };
    // The catalogue's slugs and descriptions: what the simulation serves (see `slugs`).
    let dimensions: Vec<Value> = report
        .dimensions()
        .iter()
        .filter(|d| account.offers(report, d.slug))
        .map(|d| serde_json::json!({"slug": d.slug, "description": d.description}))
        .collect();
    let metrics: Vec<Value> = report
        .metrics()
        .iter()
        .filter(|m| account.offers(report, m.slug))
        .map(|m| serde_json::json!({"slug": m.slug, "description": m.description}))
        .collect();
    json_response(
        StatusCode::OK,
        serde_json::json!({"dimensions": dimensions, "metrics": metrics}).to_string(),
    )
}

pub(crate) fn forbidden(account_id: &str) -> Response {
    message(
        StatusCode::FORBIDDEN,
        &format!("account {account_id} is not accessible with these credentials"),
    )
}

/// `POST /v1/query/accounts/{id}/campaigns/`.
pub(crate) async fn campaigns(
    state: State<SharedRef>,
    path: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    report(state, path, headers, body, Report::Campaigns)
}

/// `POST /v1/query/accounts/{id}/transactions`.
pub(crate) async fn transactions(
    state: State<SharedRef>,
    path: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    report(state, path, headers, body, Report::Transactions)
}

fn report(
    State(shared): State<SharedRef>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
    report: Report,
) -> Response {
    if let Some(r) = auth::reject_bearer(&shared, &headers) {
        return r;
    }
    let catalog = shared.catalog();
    let Some(account) = catalog.account(&account_id) else {
        return forbidden(&account_id);
    };
    let query = match parse_query(report, &body).and_then(|q| offered(account, q)) {
        Ok(q) => q,
        Err(m) => return message(StatusCode::BAD_REQUEST, &m),
    };
    let faults = shared.faults();
    let today = shared.today();
    if faults.refuse_future_end_date && query.end_exclusive > today {
        return message(StatusCode::BAD_REQUEST, "endDate cannot be in the future");
    }
    if let Some(shape) = faults.answers_without_data {
        let mut body = serde_json::json!({"accountId": account.id, "queryTimeMs": 3});
        if shape == super::NoData::Null {
            body["data"] = Value::Null;
        }
        return json_response(StatusCode::OK, body.to_string());
    }
    let cap = faults
        .row_cap
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let (text, rows) = answer_at_most(&catalog, account, &query, today, cap);
    shared.counters.rows(rows as u64);
    json_response(StatusCode::OK, text)
}

/// The query as `account` answers it (its own zone and currency where the query names none), if
/// the account has every dimension and metric it names (its `help` lists them).
pub(crate) fn offered(account: &Account, query: Query) -> Result<Query, String> {
    let query = query.for_account(account);
    let report = query.report;
    let named = query
        .dims
        .iter()
        .chain(query.filters.iter().map(|(d, _)| d));
    let slugs = named
        .map(|d| d.slug())
        .chain(query.metrics.iter().map(|m| m.slug));
    for slug in slugs {
        if !account.offers(report, slug) {
            return Err(format!(
                "\"{slug}\" is not available in account {id}; GET /v1/query/accounts/{id}/{}/help lists what it has",
                report.name(),
                id = account.id,
            ));
        }
    }
    Ok(query)
}

/// Runs a validated query and writes the whole answer body; also returns the number of rows.
pub(crate) fn answer(
    catalog: &Catalog,
    account: &Account,
    query: &Query,
    today: NaiveDate,
) -> (String, usize) {
    answer_at_most(catalog, account, query, today, None)
}

/// [`answer`] with at most `cap` rows (the `row_cap` fault), the body as whole as ever.
fn answer_at_most(
    catalog: &Catalog,
    account: &Account,
    query: &Query,
    today: NaiveDate,
    cap: Option<usize>,
) -> (String, usize) {
    let mut groups = catalog.run(account, query, today);
    if let Some(cap) = cap {
        groups.truncate(cap);
    }
    // Roughly what one row takes, so the string grows once or twice, not forty times.
    let mut out = String::with_capacity(
        64 + groups.len() * (40 + 24 * (query.dims.len() + query.metrics.len())),
    );
    out.push_str("{\"data\":[");
    // Formatting a date through chrono is slow; rows come day by day, so format each day once.
    let mut datetime: (Option<NaiveDate>, String) = (None, String::new());
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if g.day.is_some() && g.day != datetime.0 {
            datetime = (
                g.day,
                g.day
                    .map(|d| format!("{}T00:00:00Z", d.format("%Y-%m-%d")))
                    .unwrap_or_default(),
            );
        }
        write_row(&mut out, catalog, account, query, g, &datetime.1);
    }
    out.push_str("],\"accountId\":");
    push_json_str(&mut out, &account.id);
    // Deterministic rather than measured, so that equal requests get byte-equal answers.
    let _ = write!(out, ",\"queryTimeMs\":{}}}", 12 + groups.len() / 200);
    (out, groups.len())
}

fn write_row(
    out: &mut String,
    catalog: &Catalog,
    account: &Account,
    query: &Query,
    g: &Group,
    datetime: &str,
) {
    out.push('{');
    let mut first = true;
    let mut sep = |out: &mut String| {
        if !first {
            out.push(',');
        }
        first = false;
    };
    for (i, d) in query.dims.iter().enumerate() {
        sep(out);
        out.push('"');
        out.push_str(d.slug());
        out.push_str("\":");
        push_json_str(out, catalog.dim_value(account, query, i, g));
    }
    for m in &query.metrics {
        sep(out);
        out.push('"');
        out.push_str(m.slug);
        out.push_str("\":");
        m.value.of(&g.sums, g.seen.as_deref()).write(out);
    }
    if g.day.is_some() {
        sep(out);
        // The start of the calendar day in the report's time zone, written as the API writes it.
        out.push_str("\"datetime\":\"");
        out.push_str(datetime);
        out.push('"');
    }
    out.push('}');
}

/// Appends `s` as a JSON string literal. Runs of characters that need no escape are copied whole
/// (the simulated API writes hundreds of MB of names in a benchmark; char by char showed in its
/// profile).
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut rest = s;
    while let Some(at) = rest
        .bytes()
        .position(|b| b == b'"' || b == b'\\' || b < 0x20)
    {
        // `at` is an ASCII byte, so both slices fall on character boundaries.
        let (clean, tail) = rest.split_at(at);
        out.push_str(clean);
        let mut tail = tail.chars();
        match tail.next() {
            Some('"') => out.push_str("\\\""),
            Some('\\') => out.push_str("\\\\"),
            Some('\n') => out.push_str("\\n"),
            Some('\r') => out.push_str("\\r"),
            Some('\t') => out.push_str("\\t"),
            Some(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            None => {}
        }
        rest = tail.as_str();
    }
    out.push_str(rest);
    out.push('"');
}

/// Validates a report body into a [`Query`]; the error is the 400 message.
pub(crate) fn parse_query(report: Report, body: &[u8]) -> Result<Query, String> {
    parse_query_within(report, body, Some(MAX_RANGE_DAYS))
}

/// [`parse_query`] with another range limit (`None`: any range, for in-process comparisons).
pub(crate) fn parse_query_within(
    report: Report,
    body: &[u8],
    max_range_days: Option<i64>,
) -> Result<Query, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the request body is not valid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("the request body must be a JSON object".into());
    };
    let start = date_field(&obj, "startDate")?;
    let end_exclusive = date_field(&obj, "endDate")?;
    if end_exclusive <= start {
        return Err(format!(
            "endDate ({end_exclusive}) must be after startDate ({start}); endDate is exclusive"
        ));
    }
    let span = (end_exclusive - start).num_days();
    if let Some(max) = max_range_days
        && span > max
    {
        return Err(format!(
            "the range from startDate {start} to endDate {end_exclusive} covers {span} days; at most {max} days are allowed per query"
        ));
    }
    let interval = match obj.get("interval") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "day" => true,
        Some(other) => {
            return Err(format!(
                "interval {other} is not supported; send \"day\" or leave it out for totals"
            ));
        }
    };
    let metric_slugs = string_list(&obj, "metrics")?;
    if metric_slugs.is_empty() {
        return Err("metrics must name at least one metric".into());
    }
    let mut metrics: Vec<&'static MetricDef> = Vec::new();
    for slug in &metric_slugs {
        let Some(m) = slugs::metric(report, slug) else {
            return Err(format!(
                "unknown metric \"{slug}\" for the {} report; known metrics: {}",
                report.name(),
                slugs::metrics(report)
                    .iter()
                    .map(|m| m.slug)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        if metrics.iter().any(|x| x.slug == m.slug) {
            return Err(format!("metric \"{slug}\" is listed twice"));
        }
        metrics.push(m);
    }
    let mut dims: Vec<Dim> = Vec::new();
    for slug in string_list(&obj, "dimensions")? {
        let d = known_dimension(report, &slug)?;
        if dims.contains(&d) {
            return Err(format!("dimension \"{slug}\" is listed twice"));
        }
        dims.push(d);
    }
    // Not named: the account's own (`Query::for_account`), as PostHog's docs say of leaving them
    // blank.
    let zone = match obj.get("timezoneVariation") {
        None | Some(Value::Null) => None,
        Some(Value::String(tz)) if tz.parse::<chrono_tz::Tz>().is_ok() => tz.parse().ok(),
        Some(other) => {
            return Err(format!(
                "timezoneVariation {other} is not a time zone; send an Olson name such as \"America/Los_Angeles\""
            ));
        }
    };
    let currency_rate = match obj.get("currencyCode") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) if currency_rate(c).is_some() => currency_rate(c),
        Some(other) => {
            return Err(format!(
                "currencyCode {other} is not supported; send one of {}",
                super::slugs::CURRENCIES
                    .iter()
                    .map(|(c, _)| *c)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    };
    let mut filters = Vec::new();
    match obj.get("dimensionFilters") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (slug, values) in map {
                let d = known_dimension(report, slug)?;
                let values = match values {
                    Value::Array(items) => items
                        .iter()
                        .map(|v| v.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>(),
                    Value::String(s) => Some(vec![s.clone()]),
                    _ => None,
                };
                let Some(values) = values else {
                    return Err(format!("dimensionFilters.{slug} must be a list of strings"));
                };
                filters.push((d, values));
            }
        }
        Some(_) => return Err("dimensionFilters must be an object of slug: [values]".into()),
    }
    let mut order_by = Vec::new();
    match obj.get("orderBys") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let column = item.get("column").and_then(Value::as_str);
                let Some(column) = column else {
                    return Err("each orderBys entry needs a \"column\"".into());
                };
                if column == "datetime" {
                    return Err(
                        "cannot order by \"datetime\": it is not a dimension or metric slug".into(),
                    );
                }
                let col = if let Some(i) = dims.iter().position(|d| d.slug() == column) {
                    Column::Dim(i)
                } else if let Some(m) = metrics.iter().find(|m| m.slug == column) {
                    Column::Metric(m)
                } else {
                    return Err(format!(
                        "cannot order by \"{column}\": order by one of the requested dimensions or metrics"
                    ));
                };
                let descending = match item.get("direction").and_then(Value::as_str) {
                    None => false,
                    Some(d) if d.eq_ignore_ascii_case("asc") => false,
                    Some(d) if d.eq_ignore_ascii_case("desc") => true,
                    Some(d) => {
                        return Err(format!(
                            "orderBys direction \"{d}\" is not \"asc\" or \"desc\""
                        ));
                    }
                };
                order_by.push((col, descending));
            }
        }
        Some(_) => return Err("orderBys must be a list of {column, direction}".into()),
    }
    let distinct = metrics.iter().any(|m| m.is_distinct());
    let extended = metrics
        .iter()
        .any(|m| m.reads & slugs::extended_quantities(report) != 0);
    Ok(Query {
        report,
        dims,
        metrics,
        start,
        end_exclusive,
        interval,
        zone,
        currency_rate,
        filters,
        order_by,
        chain: None,
        distinct,
        extended,
    })
}

fn known_dimension(report: Report, slug: &str) -> Result<Dim, String> {
    slugs::dimension(report, slug).ok_or_else(|| {
        format!(
            "unknown dimension \"{slug}\" for the {} report; known dimensions: {}",
            report.name(),
            report
                .dimensions()
                .iter()
                .map(|d| d.slug)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn date_field(obj: &serde_json::Map<String, Value>, key: &str) -> Result<NaiveDate, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(format!("{key} is required (YYYY-MM-DD)")),
        Some(Value::String(s)) => {
            parse_day(s).ok_or_else(|| format!("{key} \"{s}\" is not a date; expected YYYY-MM-DD"))
        }
        Some(other) => Err(format!(
            "{key} {other} is not a date; expected \"YYYY-MM-DD\""
        )),
    }
}

pub(crate) fn parse_day(s: &str) -> Option<NaiveDate> {
    if s.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn string_list(obj: &serde_json::Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("{key} must be a list of slugs (strings)")),
        Some(_) => Err(format!("{key} must be a list of slugs (strings)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        match parse_query(Report::Campaigns, body.as_bytes()) {
            Ok(_) => panic!("{body} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn accepts_the_documented_example() {
        let q = parse_query(
            Report::Campaigns,
            br#"{"interval": "day", "startDate": "2026-03-01", "endDate": "2026-04-01",
                "metrics": ["impressions", "referrals", "gross_cost"], "dimensions": ["campaign_id", "campaign_name"],
                "timezoneVariation": "America/Los_Angeles", "currencyCode": "USD",
                "dimensionFilters": {}, "orderBys": [{"column": "referrals", "direction": "desc"}]}"#,
        )
        .unwrap();
        assert!(q.interval);
        assert_eq!(q.dims, vec![Dim::CampaignId, Dim::CampaignName]);
        assert_eq!(q.metrics.len(), 3);
        assert_eq!(q.order_by.len(), 1);
    }

    #[test]
    fn rejects_each_invalid_body_with_a_message() {
        let ok = r#""startDate":"2026-03-01","endDate":"2026-03-02","metrics":["impressions"]"#;
        assert!(err("{").contains("not valid JSON"));
        assert!(err("[]").contains("JSON object"));
        assert!(
            err(r#"{"endDate":"2026-03-02","metrics":["impressions"]}"#)
                .contains("startDate is required")
        );
        assert!(
            err(r#"{"startDate":"2026-3-1","endDate":"2026-03-02","metrics":["impressions"]}"#)
                .contains("not a date")
        );
        assert!(
            err(r#"{"startDate":"2026-03-02","endDate":"2026-03-02","metrics":["impressions"]}"#)
                .contains("exclusive")
        );
        assert!(
            err(r#"{"startDate":"2026-03-01","endDate":"2026-04-02","metrics":["impressions"]}"#)
                .contains("at most 31")
        );
        assert!(
            err(r#"{"startDate":"2026-03-01","endDate":"2026-03-02","metrics":[]}"#)
                .contains("at least one metric")
        );
        assert!(
            err(r#"{"startDate":"2026-03-01","endDate":"2026-03-02"}"#)
                .contains("at least one metric")
        );
        assert!(err(&format!(r#"{{{ok},"dimensions":["nope"]}}"#)).contains("unknown dimension"));
        assert!(
            err(r#"{"startDate":"2026-03-01","endDate":"2026-03-02","metrics":["nope"]}"#)
                .contains("unknown metric")
        );
        assert!(
            err(&format!(r#"{{{ok},"orderBys":[{{"column":"datetime"}}]}}"#)).contains("datetime")
        );
        assert!(err(&format!(r#"{{{ok},"interval":"week"}}"#)).contains("interval"));
        assert!(err(&format!(r#"{{{ok},"timezoneVariation":"Mars/Base"}}"#)).contains("time zone"));
        assert!(err(&format!(r#"{{{ok},"currencyCode":"XXX"}}"#)).contains("currencyCode"));
        // Exactly 31 days is allowed.
        assert!(
            parse_query(
                Report::Campaigns,
                br#"{"startDate":"2026-03-01","endDate":"2026-04-01","metrics":["impressions"]}"#
            )
            .is_ok()
        );
    }

    #[test]
    fn escapes_json_strings() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\td\u{1}é🚀");
        assert_eq!(s, r#""a\"b\\c\td\u0001é🚀""#);
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\"b\\c\td\u{1}é🚀");
    }
}
