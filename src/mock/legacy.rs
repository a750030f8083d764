//! The legacy Reporting API: `GET /reporting/accounts/{id}/summary`, `.../campaigns/breakdown`,
//! `.../transactions/breakdown`, and one campaign's `.../campaigns/{campaignId}/breakdown` and
//! `.../campaigns/{campaignId}/histogram`.
//!
//! Every answer wraps its rows as `{"data": {"items": [...]}}` with camelCase fields. The summary and
//! the breakdowns total over the requested range (there is no interval): one item per
//! `groupByValue`; the histogram has one item per day. Days: from the day of `dateStart` through the
//! day of `dateEnd`; a `dateEnd` at exactly midnight (`2020-04-01T00:00:00.000`) ends the range
//! before that day, so both `..T23:59:59.999` of the last day and midnight of the next day work.
//!
//! Requests are checked in the Query API's order: bearer token (401), account visible to the
//! credentials (403), campaign of that account (404 for the campaign-level paths), then the query
//! parameters (400 with a `message` naming the problem).
//!
//! The numbers are the Query API's, so a loader can check one against the other:
//! - a campaign breakdown by `campaign` equals the campaigns report's totals by `campaign_id` over
//!   the same days; `country` and `partner-source` split the same totals another way;
//! - a transactions breakdown by `pagetype` equals the transactions report's totals by `page_type`;
//!   every other `groupby` splits the same totals another way;
//! - one campaign's breakdown and histogram are the campaigns report filtered on its `campaign_id`:
//!   they sum to that campaign's share of the account's totals.
//!
//! Choices where `rokt-api.md` is silent (the README's simulated-API section repeats them):
//! - The campaign-level breakdown takes the `groupby` values `rokt-api.md` lists for the campaign
//!   breakdown (`campaign`, `country`, `partner-source`; default `campaign`), like the account-level
//!   one. The transactions breakdown has no documented default, so its `groupby` is required.
//! - A histogram item is `intervalTimestamp` plus the campaign breakdown's metrics (the shape of
//!   Rokt's "GET Campaign Histogram" page). Its buckets are days, as the Query API's `interval`;
//!   `intervalTimestamp` is the start of the day in the requested `timeZoneVariation`, written like
//!   `dateStart` (`2026-03-01T00:00:00.000`, no zone). Days after today have no item.
//! - A transactions item carries the fields of Rokt's "GET Account Transactions Breakdown" page:
//!   `revenue, transactions, placementImpressions, impressions, referrals, purchases,
//!   positivePlacementEngagements, rpt, rpm`. Broken down by `placement`, the page-level ones
//!   (`transactions`, `purchases`, `rpt`) are `null`: Rokt says that breakdown "does not return
//!   results for page-level metrics".
//! - A campaign the account does not have (also one of another account) is 404 with a `message`.
//! - Unknown query parameters are ignored; `rokt-version` is not checked.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use super::data::{Dim, MetricDef, Query, Report, currency_rate};
use super::query::{forbidden, push_json_str};
use super::{Shared, SharedRef, auth, json_response, message};

/// The longest range the legacy endpoints total over, in days (a guard, not a documented limit).
const MAX_LEGACY_DAYS: i64 = 366;

type Params = QueryParams<HashMap<String, String>>;

/// The legacy paths, each with what it answers.
const ACCOUNT_PATHS: &[(&str, Endpoint)] = &[
    (
        "/reporting/accounts/{account_id}/summary",
        Endpoint::Summary,
    ),
    (
        "/reporting/accounts/{account_id}/campaigns/breakdown",
        Endpoint::CampaignsBreakdown,
    ),
    (
        "/reporting/accounts/{account_id}/transactions/breakdown",
        Endpoint::TransactionsBreakdown,
    ),
];
const CAMPAIGN_PATHS: &[(&str, Endpoint)] = &[
    (
        "/reporting/accounts/{account_id}/campaigns/{campaign_id}/breakdown",
        Endpoint::CampaignBreakdown,
    ),
    (
        "/reporting/accounts/{account_id}/campaigns/{campaign_id}/histogram",
        Endpoint::CampaignHistogram,
    ),
];

/// The routes of every legacy endpoint (`GET` only).
pub(crate) fn routes() -> Router<SharedRef> {
    let mut router = Router::new();
    for &(path, endpoint) in ACCOUNT_PATHS {
        let handler = move |State(shared): State<SharedRef>,
                            Path(account_id): Path<String>,
                            QueryParams(params): Params,
                            headers: HeaderMap| async move {
            legacy(&shared, &account_id, None, &params, &headers, endpoint)
        };
        router = router.route(path, get(handler));
    }
    for &(path, endpoint) in CAMPAIGN_PATHS {
        let handler = move |State(shared): State<SharedRef>,
                            Path((account_id, campaign_id)): Path<(String, String)>,
                            QueryParams(params): Params,
                            headers: HeaderMap| async move {
            let campaign = Some(campaign_id.as_str());
            legacy(&shared, &account_id, campaign, &params, &headers, endpoint)
        };
        router = router.route(path, get(handler));
    }
    router
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Summary,
    CampaignsBreakdown,
    TransactionsBreakdown,
    CampaignBreakdown,
    CampaignHistogram,
}

impl Endpoint {
    fn report(self) -> Report {
        match self {
            Endpoint::TransactionsBreakdown => Report::Transactions,
            _ => Report::Campaigns,
        }
    }

    /// The `groupby` values it accepts (empty: it has no `groupby`).
    fn groupings(self) -> &'static [Grouping] {
        match self {
            Endpoint::CampaignsBreakdown | Endpoint::CampaignBreakdown => CAMPAIGN_GROUPINGS,
            Endpoint::TransactionsBreakdown => TRANSACTION_GROUPINGS,
            Endpoint::Summary | Endpoint::CampaignHistogram => &[],
        }
    }

    /// The grouping without a `groupby` parameter; `None`: the parameter is required.
    fn default_grouping(self) -> Option<&'static Grouping> {
        match self {
            Endpoint::CampaignsBreakdown | Endpoint::CampaignBreakdown => {
                CAMPAIGN_GROUPINGS.first()
            }
            _ => None,
        }
    }

    /// The item fields after the label, as (camelCase name, Query API metric slug): the legacy
    /// metrics in the Query API's terms, so both APIs agree on every number.
    fn fields(self) -> &'static [(&'static str, &'static str)] {
        match self.report() {
            Report::Campaigns => CAMPAIGN_FIELDS,
            Report::Transactions => TRANSACTION_FIELDS,
        }
    }
}

/// One `groupby` value: the dimension its `groupByValue` comes from, and the chain that splits the
/// report's units for it (`None`: the report's own; see `data`).
struct Grouping {
    name: &'static str,
    dim: Dim,
    chain: Option<&'static [Dim]>,
}

const fn grouping(name: &'static str, dim: Dim, chain: Option<&'static [Dim]>) -> Grouping {
    Grouping { name, dim, chain }
}

const CAMPAIGN_GROUPINGS: &[Grouping] = &[
    grouping("campaign", Dim::CampaignId, None),
    grouping("country", Dim::CampaignCountry, None),
    grouping(
        "partner-source",
        Dim::PartnerSource,
        Some(&[Dim::PartnerSource]),
    ),
];

const TRANSACTION_GROUPINGS: &[Grouping] = &[
    grouping("age", Dim::AgeRange, Some(&[Dim::AgeRange])),
    grouping("brand", Dim::Brand, Some(&[Dim::Brand])),
    grouping("gender", Dim::Gender, Some(&[Dim::Gender])),
    grouping("page", Dim::Page, Some(&[Dim::Page])),
    // The transactions report's own `page_type` split: equal to its rows by `page_type`.
    grouping("pagetype", Dim::PageType, None),
    grouping("placement", Dim::Placement, Some(&[Dim::Placement])),
    grouping("position", Dim::Position, Some(&[Dim::Position])),
];

const CAMPAIGN_FIELDS: &[(&str, &str)] = &[
    ("impressions", "impressions"),
    ("referrals", "referrals"),
    ("referralRate", "referral_rate"),
    ("grossCost", "gross_cost"),
    ("netCost", "net_cost"),
    ("costPerReferral", "cpr"),
    ("acquisitionsByReferralDate", "acquisitions"),
    (
        "acquisitionsByConversionDate",
        "acquisitions_by_conversion_time",
    ),
    ("conversionValue", "conversion_value"),
];

const TRANSACTION_FIELDS: &[(&str, &str)] = &[
    ("revenue", "revenue"),
    ("transactions", "transactions"),
    ("placementImpressions", "placement_impressions"),
    ("impressions", "impressions"),
    ("referrals", "referrals"),
    ("purchases", "purchases"),
    ("positivePlacementEngagements", "engagements"),
    ("rpt", "revenue_per_transaction"),
    ("rpm", "revenue_per_mille"),
];

/// The page-level transactions fields: `null` in a breakdown by placement.
const PAGE_LEVEL_FIELDS: &[&str] = &["transactions", "purchases", "rpt"];

/// What labels an item.
enum Label {
    /// `accountId`: the summary's one item.
    Account,
    /// `groupByValue` (and `campaignName` when grouped by campaign).
    Group(&'static Grouping),
    /// `intervalTimestamp`: the histogram's day.
    Day,
}

fn legacy(
    shared: &Shared,
    account_id: &str,
    campaign_id: Option<&str>,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    endpoint: Endpoint,
) -> Response {
    if let Some(r) = auth::reject_bearer(shared, headers) {
        return r;
    }
    let catalog = shared.catalog();
    let Some(account) = catalog.account(account_id) else {
        return forbidden(account_id);
    };
    if let Some(campaign) = campaign_id
        && !account.has_campaign(campaign)
    {
        return message(
            StatusCode::NOT_FOUND,
            &format!("campaign {campaign} was not found in account {account_id}"),
        );
    }
    let (query, label) = match parse(params, endpoint) {
        Ok(q) => q,
        Err(m) => return message(StatusCode::BAD_REQUEST, &m),
    };
    let mut query = query.for_account(account);
    if let Some(campaign) = campaign_id {
        query
            .filters
            .push((Dim::CampaignId, vec![campaign.to_owned()]));
    }
    let page_level = !matches!(label, Label::Group(g) if g.dim == Dim::Placement);
    let fields: Vec<(&str, Option<&MetricDef>)> = endpoint
        .fields()
        .iter()
        .map(|(name, slug)| {
            let shown = page_level || !PAGE_LEVEL_FIELDS.contains(name);
            (*name, query.report.metric(slug).filter(|_| shown))
        })
        .collect();
    let groups = catalog.run(account, &query, shared.today());
    let mut out = String::with_capacity(64 + groups.len() * 300);
    out.push_str("{\"data\":{\"items\":[");
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match &label {
            Label::Account => {
                out.push_str("{\"accountId\":");
                push_json_str(&mut out, &account.id);
            }
            Label::Group(grouping) => {
                out.push_str("{\"groupByValue\":");
                push_json_str(&mut out, catalog.dim_value(account, &query, 0, g));
                if grouping.dim == Dim::CampaignId {
                    out.push_str(",\"campaignName\":");
                    push_json_str(&mut out, catalog.campaign_name(account, g.key[0]));
                }
            }
            Label::Day => {
                let day = g.day.map(|d| d.format("%Y-%m-%d").to_string());
                let _ = write!(
                    out,
                    "{{\"intervalTimestamp\":\"{}T00:00:00.000\"",
                    day.unwrap_or_default()
                );
            }
        }
        for (name, metric) in &fields {
            let _ = write!(out, ",\"{name}\":");
            match metric {
                Some(m) => (m.value)(&g.sums).write(&mut out),
                None => out.push_str("null"),
            }
        }
        out.push('}');
    }
    out.push_str("]}}");
    shared.counters.rows(groups.len() as u64);
    json_response(StatusCode::OK, out)
}

fn parse(params: &HashMap<String, String>, endpoint: Endpoint) -> Result<(Query, Label), String> {
    let start = params
        .get("dateStart")
        .ok_or("dateStart is required, e.g. 2020-03-01T00:00:00.000")?;
    let end = params
        .get("dateEnd")
        .ok_or("dateEnd is required, e.g. 2020-03-31T23:59:59.999")?;
    let start_day = parse_instant(start)
        .ok_or_else(|| {
            format!("dateStart \"{start}\" is not a date-time like 2020-03-01T00:00:00.000")
        })?
        .date();
    let end_exclusive = match parse_instant(end) {
        // A date alone means the whole of that day.
        Some(t) if end.len() == 10 => t.date().succ_opt().unwrap_or(t.date()),
        Some(t) if t.time() == NaiveTime::MIN => t.date(),
        Some(t) => t.date().succ_opt().unwrap_or(t.date()),
        None => {
            return Err(format!(
                "dateEnd \"{end}\" is not a date-time like 2020-03-31T23:59:59.999"
            ));
        }
    };
    if end_exclusive <= start_day {
        return Err(format!("dateEnd ({end}) must be after dateStart ({start})"));
    }
    if (end_exclusive - start_day).num_days() > MAX_LEGACY_DAYS {
        return Err(format!(
            "the range from {start} to {end} is longer than {MAX_LEGACY_DAYS} days"
        ));
    }
    let rate = match params.get("currency") {
        None => None,
        Some(c) => Some(currency_rate(c).ok_or_else(|| {
            format!("currency \"{c}\" is not one of AUD CAD EUR GBP JPY NZD SGD USD KRW CNY")
        })?),
    };
    let zone =
        match params.get("timeZoneVariation") {
            None => None,
            Some(tz) => Some(tz.parse::<chrono_tz::Tz>().map_err(|_| {
                format!("timeZoneVariation \"{tz}\" is not an Olson time zone name")
            })?),
        };
    let label = match endpoint {
        Endpoint::Summary => Label::Account,
        Endpoint::CampaignHistogram => Label::Day,
        _ => Label::Group(find_grouping(params.get("groupby"), endpoint)?),
    };
    let (dims, chain) = match &label {
        Label::Group(g) => (vec![g.dim], g.chain),
        Label::Account | Label::Day => (vec![], None),
    };
    let query = Query {
        report: endpoint.report(),
        dims,
        metrics: vec![],
        start: start_day,
        end_exclusive,
        interval: matches!(label, Label::Day),
        zone,
        currency_rate: rate,
        filters: vec![],
        order_by: vec![],
        chain,
    };
    Ok((query, label))
}

/// The grouping a `groupby` value names, or the endpoint's default.
fn find_grouping(value: Option<&String>, endpoint: Endpoint) -> Result<&'static Grouping, String> {
    let choices = endpoint.groupings();
    let names = || {
        choices
            .iter()
            .map(|g| g.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match value {
        None => endpoint
            .default_grouping()
            .ok_or_else(|| format!("groupby is required: one of {}", names())),
        Some(v) => choices
            .iter()
            .find(|g| g.name == v.as_str())
            .ok_or_else(|| format!("groupby \"{v}\" is not one of {}", names())),
    }
}

fn parse_instant(s: &str) -> Option<NaiveDateTime> {
    if s.len() == 10 {
        return NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .map(|d| d.and_time(NaiveTime::MIN));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn days(start: &str, end: &str) -> i64 {
        let (q, _) = parse(
            &params(&[("dateStart", start), ("dateEnd", end)]),
            Endpoint::CampaignsBreakdown,
        )
        .unwrap();
        (q.end_exclusive - q.start).num_days()
    }

    #[test]
    fn date_end_covers_its_day_unless_it_is_midnight() {
        assert_eq!(
            days("2020-03-01T00:00:00.000", "2020-03-31T23:59:59.999"),
            31
        );
        assert_eq!(
            days("2020-03-01T00:00:00.000", "2020-04-01T00:00:00.000"),
            31
        );
        assert_eq!(days("2020-03-01", "2020-03-01"), 1);
        assert_eq!(days("2020-03-01T00:00:00", "2020-03-01T23:59:59"), 1);
    }

    #[test]
    fn rejects_bad_parameters() {
        let day = [("dateStart", "2020-03-01"), ("dateEnd", "2020-03-01")];
        let with = |extra: (&'static str, &'static str)| {
            let mut p = params(&day);
            p.insert(extra.0.into(), extra.1.into());
            p
        };
        let bad = [
            (
                Endpoint::CampaignsBreakdown,
                params(&[("dateEnd", "2020-03-01")]),
            ),
            (
                Endpoint::Summary,
                params(&[
                    ("dateStart", "2020-03-02"),
                    ("dateEnd", "2020-03-01T00:00:00.000"),
                ]),
            ),
            (Endpoint::CampaignsBreakdown, with(("groupby", "x"))),
            (Endpoint::CampaignBreakdown, with(("groupby", "pagetype"))),
            (
                Endpoint::TransactionsBreakdown,
                with(("groupby", "campaign")),
            ),
            (Endpoint::TransactionsBreakdown, params(&day)),
            (Endpoint::CampaignHistogram, with(("currency", "XXX"))),
            (
                Endpoint::CampaignsBreakdown,
                params(&[("dateStart", "03/01/2020"), ("dateEnd", "2020-03-01")]),
            ),
        ];
        for (endpoint, p) in bad {
            assert!(parse(&p, endpoint).is_err(), "{endpoint:?} {p:?}");
        }
    }

    #[test]
    fn every_field_is_a_query_api_metric() {
        for endpoint in [Endpoint::CampaignBreakdown, Endpoint::TransactionsBreakdown] {
            for (name, slug) in endpoint.fields() {
                assert!(endpoint.report().metric(slug).is_some(), "{name}: {slug}");
            }
        }
        for name in PAGE_LEVEL_FIELDS {
            assert!(TRANSACTION_FIELDS.iter().any(|(n, _)| n == name), "{name}");
        }
    }
}
