//! The legacy Reporting API: `GET /reporting/accounts/{id}/summary`, `.../campaigns/breakdown`,
//! `.../transactions/breakdown`, and one campaign's `.../campaigns/{campaignId}/breakdown` and
//! `.../campaigns/{campaignId}/histogram`.
//!
//! As Rokt's endpoint pages document them (`rokt-api.md`, "Legacy API corrections"):
//! - the summary answers `{"campaignsSummary": {...}, "transactionsSummary": {...}}`; the
//!   breakdowns and the histogram wrap their items as `{"data": {"items": [...]}}`, camelCase;
//! - `dateStart`, `dateEnd`, `currency` and `timeZoneVariation` are required: a request without
//!   one is 400 naming it;
//! - a campaign breakdown item is `groupByValue, grossCost, netCost, impressions,
//!   uniqueSessions, referrals, campaignCountries, campaigns, acquisitionsByConversionDate,
//!   acquisitionsByReferralDate, creatives, audiences`, then `campaignName` (and `creativeName`
//!   grouped by creative); a histogram item is `intervalTimestamp` and the same metrics;
//! - the campaign-level breakdown takes `groupby=creative` (as the production DAG sends it),
//!   `audience`, `country` and `subvertical`;
//! - days: from the day of `dateStart` up to `dateEnd`, read as the production client sends it:
//!   a plain date `dateEnd` is exclusive (`dateStart=2026-03-04&dateEnd=2026-03-05` is the one day
//!   2026-03-04), and so is a `dateEnd` at exactly midnight (`2026-03-05T00:00:00.000`); a
//!   `dateEnd` with a later time of day (`2026-03-04T23:59:59.999`, the pages' example) includes
//!   its day.
//!
//! The summary and the breakdowns total over the range (one item per `groupByValue`); the
//! histogram has one item per day. Requests are checked in the Query API's order: bearer token
//! (401), account visible to the credentials (403), campaign of that account (404 for the
//! campaign-level paths), then the query parameters (400 with a `message` naming the problem).
//!
//! The numbers are the Query API's, so a loader can check one against the other:
//! - a campaign breakdown by `campaign` equals the campaigns report's totals by `campaign_id` over
//!   the same days; `country` and `partner-source` split the same totals another way;
//! - one campaign's breakdown by `creative` equals the report's rows by `creative_id` for that
//!   campaign, by `audience` its rows by `audience_name`; `country` and `subvertical` split the
//!   same totals; its histogram is its rows per day;
//! - a transactions breakdown by `pagetype` equals the transactions report's totals by
//!   `page_type` (`transactions`, `impressions`, `referrals`; `placementImpressions` is the
//!   report's `layout_impressions`); every other `groupby` splits the same totals;
//! - the summary's `campaignsSummary` is the account's campaign totals, its `transactionsSummary`
//!   the transactions totals.
//!
//! Choices where `rokt-api.md` is silent (docs/simulated-api.md lists them all):
//! - The account-level campaign breakdown's `groupby` defaults to `campaign`, the campaign-level
//!   one's to `creative`; the transactions breakdown has no documented default, so its `groupby`
//!   is required.
//! - `campaigns`, `creatives`, `audiences` and `campaignCountries` are distinct counts (see
//!   `distinct`): not additive, a campaign counts once however many days or creatives it has.
//!   `uniqueSessions` counts a session once per creative and day it saw (the simulation has no
//!   sessions that span them), so it adds up like `impressions`.
//! - `campaignName` is on items that belong to one campaign (grouped by campaign, and every
//!   campaign-level breakdown item), not on items that mix campaigns (by country or partner
//!   source). Grouped by audience, `groupByValue` is the audience's name (no item field carries
//!   a name for it).
//! - The summary's fields are the breakdowns' metrics (without labels), over the account.
//! - A histogram's `intervalTimestamp` is the start of the day in the requested
//!   `timeZoneVariation`, written like `dateStart` (`2026-03-01T00:00:00.000`, no zone); days
//!   after today have no item.
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

use super::data::{Account, Catalog, Dim, Group, Query, Report, currency_rate};
use super::distinct::Distinct;
use super::query::{forbidden, push_json_str};
use super::slugs::*;
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
            Endpoint::CampaignsBreakdown => ACCOUNT_CAMPAIGN_GROUPINGS,
            Endpoint::CampaignBreakdown => CAMPAIGN_LEVEL_GROUPINGS,
            Endpoint::TransactionsBreakdown => TRANSACTION_GROUPINGS,
            Endpoint::Summary | Endpoint::CampaignHistogram => &[],
        }
    }

    /// The grouping without a `groupby` parameter; `None`: the parameter is required.
    fn default_grouping(self) -> Option<&'static Grouping> {
        match self {
            Endpoint::CampaignsBreakdown => ACCOUNT_CAMPAIGN_GROUPINGS.first(),
            Endpoint::CampaignBreakdown => CAMPAIGN_LEVEL_GROUPINGS.first(),
            _ => None,
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

const ACCOUNT_CAMPAIGN_GROUPINGS: &[Grouping] = &[
    grouping("campaign", Dim::CampaignId, None),
    grouping("country", Dim::CampaignCountry, None),
    grouping(
        "partner-source",
        Dim::PartnerSource,
        Some(&[Dim::PartnerSource]),
    ),
];

/// One campaign's breakdowns: by its creatives, its audiences (the campaigns report's own
/// audience split), its country, the partner sub-verticals it was shown in.
const CAMPAIGN_LEVEL_GROUPINGS: &[Grouping] = &[
    grouping("creative", Dim::CreativeId, None),
    grouping("audience", Dim::AudienceName, None),
    grouping("country", Dim::CampaignCountry, None),
    grouping("subvertical", Dim::Subvertical, Some(&[Dim::Subvertical])),
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

/// A metric field of a legacy item: its camelCase name and how it follows from the row.
struct Field {
    name: &'static str,
    value: Value,
}

const fn sums(name: &'static str, f: fn(&Sums) -> Num) -> Field {
    Field {
        name,
        value: Value::Sums(f),
    }
}

const fn distinct(name: &'static str, kind: Distinct) -> Field {
    Field {
        name,
        value: Value::Distinct(kind),
    }
}

/// A campaign breakdown's (and histogram's, and `campaignsSummary`'s) metrics, in the order of
/// Rokt's page.
const CAMPAIGN_FIELDS: &[Field] = &[
    sums("grossCost", |s| Num::Money(s[C_GROSS_COST])),
    sums("netCost", |s| Num::Money(s[C_NET_COST])),
    sums("impressions", |s| Num::Int(s[C_IMPRESSIONS])),
    sums("uniqueSessions", |s| Num::Int(s[C_SESSIONS])),
    sums("referrals", |s| Num::Int(s[C_REFERRALS])),
    distinct("campaignCountries", Distinct::CampaignCountries),
    distinct("campaigns", Distinct::Campaigns),
    sums("acquisitionsByConversionDate", |s| {
        Num::Int(s[C_ACQ_CONVERSION_TIME])
    }),
    sums("acquisitionsByReferralDate", |s| Num::Int(acquisitions(s))),
    distinct("creatives", Distinct::Creatives),
    distinct("audiences", Distinct::Audiences),
];

/// A transactions breakdown's (and `transactionsSummary`'s) metrics.
const TRANSACTION_FIELDS: &[Field] = &[
    sums("revenue", |s| Num::Money(s[T_REVENUE])),
    sums("transactions", |s| Num::Int(s[T_TRANSACTIONS])),
    sums("placementImpressions", |s| {
        Num::Int(s[T_PLACEMENT_IMPRESSIONS])
    }),
    sums("impressions", |s| Num::Int(s[T_IMPRESSIONS])),
    sums("referrals", |s| Num::Int(s[T_REFERRALS])),
    sums("purchases", |s| Num::Int(s[T_PURCHASES])),
    sums("positivePlacementEngagements", |s| {
        Num::Int(s[T_ENGAGEMENTS])
    }),
    // Revenue per transaction and per 1,000 impressions, in the report currency.
    sums("rpt", |s| Num::Ratio(per(s[T_REVENUE], s[T_TRANSACTIONS]))),
    sums("rpm", |s| {
        Num::Ratio(per(s[T_REVENUE] * 1_000, s[T_IMPRESSIONS]))
    }),
];

/// The page-level transactions fields: `null` in a breakdown by placement.
const PAGE_LEVEL_FIELDS: &[&str] = &["transactions", "purchases", "rpt"];

fn fields(report: Report) -> &'static [Field] {
    match report {
        Report::Campaigns => CAMPAIGN_FIELDS,
        Report::Transactions => TRANSACTION_FIELDS,
    }
}

/// What labels an item.
enum Label {
    /// No item: the summary's two objects.
    Summary,
    /// `groupByValue` (and `campaignName`, `creativeName` where they apply).
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
    let campaign = match campaign_id {
        None => None,
        Some(id) => match account.campaign_index(id) {
            Some(index) => Some((id, index)),
            None => {
                return message(
                    StatusCode::NOT_FOUND,
                    &format!("campaign {id} was not found in account {account_id}"),
                );
            }
        },
    };
    let (mut query, label) = match parse(params, endpoint) {
        Ok(q) => q,
        Err(m) => return message(StatusCode::BAD_REQUEST, &m),
    };
    if let Some((id, _)) = campaign {
        query.filters.push((Dim::CampaignId, vec![id.to_owned()]));
    }
    let today = shared.today();
    let mut out = String::new();
    let served = match label {
        Label::Summary => summary(&catalog, account, query, today, &mut out),
        Label::Group(grouping) => {
            let groups = catalog.run(account, &query, today);
            let names = Names {
                catalog: &catalog,
                account,
                campaign: campaign.map(|(_, index)| index),
                grouping,
            };
            items(&mut out, &groups, query.report, |out, g| {
                out.push_str("{\"groupByValue\":");
                push_json_str(out, catalog.dim_value(account, &query, 0, g));
                write_fields(out, g, query.report, grouping.dim == Dim::Placement);
                names.write(out, g);
                out.push('}');
            });
            groups.len()
        }
        Label::Day => {
            let groups = catalog.run(account, &query, today);
            items(&mut out, &groups, query.report, |out, g| {
                let day = g.day.map(|d| d.format("%Y-%m-%d").to_string());
                let _ = write!(
                    out,
                    "{{\"intervalTimestamp\":\"{}T00:00:00.000\"",
                    day.unwrap_or_default()
                );
                write_fields(out, g, query.report, false);
                out.push('}');
            });
            groups.len()
        }
    };
    shared.counters.rows(served as u64);
    json_response(StatusCode::OK, out)
}

/// Writes `{"data":{"items":[...]}}`, each item by `item`.
fn items(
    out: &mut String,
    groups: &[Group],
    report: Report,
    mut item: impl FnMut(&mut String, &Group),
) {
    out.reserve(64 + groups.len() * 40 * (1 + fields(report).len()));
    out.push_str("{\"data\":{\"items\":[");
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item(out, g);
    }
    out.push_str("]}}");
}

/// Appends `,"field":value` for each metric field of `report`; `placement`: a breakdown by
/// placement, whose page-level fields are `null`.
fn write_fields(out: &mut String, g: &Group, report: Report, placement: bool) {
    for field in fields(report) {
        let _ = write!(out, ",\"{}\":", field.name);
        if placement && PAGE_LEVEL_FIELDS.contains(&field.name) {
            out.push_str("null");
        } else {
            field.value.of(&g.sums, g.seen.as_deref()).write(out);
        }
    }
}

/// The name fields of a breakdown item.
struct Names<'a> {
    catalog: &'a Catalog,
    account: &'a Account,
    /// The campaign of a campaign-level breakdown (its index).
    campaign: Option<u32>,
    grouping: &'static Grouping,
}

impl Names<'_> {
    /// `campaignName` when the item belongs to one campaign, and `creativeName` when it is a
    /// creative.
    fn write(&self, out: &mut String, g: &Group) {
        let campaign = match (self.campaign, self.grouping.dim) {
            (Some(index), _) => Some(index),
            (None, Dim::CampaignId) => Some(g.key[0]),
            (None, _) => None,
        };
        if let Some(index) = campaign {
            out.push_str(",\"campaignName\":");
            push_json_str(out, self.catalog.campaign_name(self.account, index));
        }
        if self.grouping.dim == Dim::CreativeId {
            out.push_str(",\"creativeName\":");
            push_json_str(
                out,
                self.catalog
                    .attr_text(self.account, Dim::CreativeName, g.key[0]),
            );
        }
    }
}

/// Writes the summary, `{"campaignsSummary": {...}, "transactionsSummary": {...}}`: each report's
/// totals over the range (zeros when the range has no day up to today). Returns the objects
/// written (2).
fn summary(
    catalog: &Catalog,
    account: &Account,
    campaigns: Query,
    today: NaiveDate,
    out: &mut String,
) -> usize {
    let transactions = Query {
        report: Report::Transactions,
        dims: vec![],
        metrics: vec![],
        start: campaigns.start,
        end_exclusive: campaigns.end_exclusive,
        interval: false,
        zone: campaigns.zone,
        currency_rate: campaigns.currency_rate,
        filters: vec![],
        order_by: vec![],
        chain: None,
        distinct: false,
        extended: true,
    };
    out.push('{');
    for (i, (name, query)) in [
        ("campaignsSummary", &campaigns),
        ("transactionsSummary", &transactions),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        let groups = catalog.run(account, query, today);
        let empty = Group {
            day: None,
            key: [0; MAX_DIMS],
            sums: [0; QUANTITIES],
            seen: None,
        };
        let total = groups.first().unwrap_or(&empty);
        let _ = write!(out, "\"{name}\":");
        // The fields after a `{` of their own: drop write_fields' leading comma.
        let mut object = String::new();
        write_fields(&mut object, total, query.report, false);
        out.push('{');
        out.push_str(object.strip_prefix(',').unwrap_or(&object));
        out.push('}');
    }
    out.push('}');
    2
}

fn parse(params: &HashMap<String, String>, endpoint: Endpoint) -> Result<(Query, Label), String> {
    let start = params
        .get("dateStart")
        .ok_or("dateStart is required, e.g. 2020-03-01T00:00:00.000 or 2020-03-01")?;
    let end = params.get("dateEnd").ok_or(
        "dateEnd is required, e.g. 2020-03-31T23:59:59.999 (that day included) or 2020-04-01 \
         (a plain date is exclusive)",
    )?;
    let start_day = parse_instant(start)
        .ok_or_else(|| {
            format!("dateStart \"{start}\" is not a date-time like 2020-03-01T00:00:00.000")
        })?
        .date();
    let end_exclusive = match parse_instant(end) {
        // A plain date, or midnight: the range ends before that day (the production client sends
        // `dateEnd = D+1` for the single day D).
        Some(t) if t.time() == NaiveTime::MIN => t.date(),
        Some(t) => t.date().succ_opt().unwrap_or(t.date()),
        None => {
            return Err(format!(
                "dateEnd \"{end}\" is not a date-time like 2020-03-31T23:59:59.999"
            ));
        }
    };
    if end_exclusive <= start_day {
        return Err(format!(
            "dateEnd ({end}) must be after dateStart ({start}); a plain date dateEnd is exclusive, \
             so one day D is dateStart=D&dateEnd=D+1"
        ));
    }
    if (end_exclusive - start_day).num_days() > MAX_LEGACY_DAYS {
        return Err(format!(
            "the range from {start} to {end} is longer than {MAX_LEGACY_DAYS} days"
        ));
    }
    const CURRENCIES: &str = "AUD CAD EUR GBP JPY NZD SGD USD KRW CNY";
    let (currency, zone) = (params.get("currency"), params.get("timeZoneVariation"));
    match (currency, zone) {
        (None, None) => {
            return Err(format!(
                "currency and timeZoneVariation are required: currency one of {CURRENCIES}, \
                 timeZoneVariation an Olson name such as America/New_York"
            ));
        }
        (None, Some(_)) => return Err(format!("currency is required: one of {CURRENCIES}")),
        (Some(_), None) => {
            return Err(
                "timeZoneVariation is required: an Olson name such as America/New_York".into(),
            );
        }
        (Some(_), Some(_)) => {}
    }
    let rate = currency
        .map(|c| {
            currency_rate(c).ok_or_else(|| format!("currency \"{c}\" is not one of {CURRENCIES}"))
        })
        .transpose()?;
    let zone = zone
        .map(|tz| {
            tz.parse::<chrono_tz::Tz>()
                .map_err(|_| format!("timeZoneVariation \"{tz}\" is not an Olson time zone name"))
        })
        .transpose()?;
    let label = match endpoint {
        Endpoint::Summary => Label::Summary,
        Endpoint::CampaignHistogram => Label::Day,
        _ => Label::Group(find_grouping(params.get("groupby"), endpoint)?),
    };
    let (dims, chain) = match &label {
        Label::Group(g) => (vec![g.dim], g.chain),
        Label::Summary | Label::Day => (vec![], None),
    };
    let report = endpoint.report();
    let query = Query {
        report,
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
        // The campaign fields count campaigns, creatives, audiences and countries, and read
        // the sessions.
        distinct: report == Report::Campaigns,
        extended: true,
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
        let mut p: HashMap<String, String> = [("currency", "USD"), ("timeZoneVariation", "UTC")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        for (k, v) in pairs {
            p.insert((*k).to_owned(), (*v).to_owned());
        }
        p
    }

    fn days(start: &str, end: &str) -> Result<i64, String> {
        let (q, _) = parse(
            &params(&[("dateStart", start), ("dateEnd", end)]),
            Endpoint::CampaignsBreakdown,
        )?;
        Ok((q.end_exclusive - q.start).num_days())
    }

    #[test]
    fn a_plain_date_end_is_exclusive_and_a_time_of_day_includes_its_day() {
        assert_eq!(
            days("2020-03-01T00:00:00.000", "2020-03-31T23:59:59.999"),
            Ok(31)
        );
        assert_eq!(
            days("2020-03-01T00:00:00.000", "2020-04-01T00:00:00.000"),
            Ok(31)
        );
        // The production client's one day: dateStart=D&dateEnd=D+1.
        assert_eq!(days("2020-03-01", "2020-03-02"), Ok(1));
        assert_eq!(days("2020-03-01", "2020-04-01"), Ok(31));
        assert_eq!(days("2020-03-01T00:00:00", "2020-03-01T23:59:59"), Ok(1));
        let same_day = days("2020-03-01", "2020-03-01").unwrap_err();
        assert!(same_day.contains("dateStart=D&dateEnd=D+1"), "{same_day}");
    }

    #[test]
    fn currency_and_time_zone_are_required_and_named() {
        let day = [("dateStart", "2020-03-01"), ("dateEnd", "2020-03-02")];
        let without = |key: &str| {
            let mut p = params(&day);
            p.remove(key);
            p
        };
        let message = |p: HashMap<String, String>| match parse(&p, Endpoint::Summary) {
            Ok(_) => panic!("{p:?} was accepted"),
            Err(m) => m,
        };
        assert!(message(without("currency")).starts_with("currency is required"));
        assert!(message(without("timeZoneVariation")).starts_with("timeZoneVariation is required"));
        let mut neither = without("currency");
        neither.remove("timeZoneVariation");
        assert!(message(neither).starts_with("currency and timeZoneVariation are required"));
    }

    #[test]
    fn rejects_bad_parameters() {
        let day = [("dateStart", "2020-03-01"), ("dateEnd", "2020-03-02")];
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
            (Endpoint::CampaignsBreakdown, with(("groupby", "creative"))),
            (Endpoint::CampaignBreakdown, with(("groupby", "pagetype"))),
            (Endpoint::CampaignBreakdown, with(("groupby", "campaign"))),
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
    fn page_level_fields_are_transactions_fields() {
        for name in PAGE_LEVEL_FIELDS {
            assert!(TRANSACTION_FIELDS.iter().any(|f| f.name == *name), "{name}");
        }
    }
}
