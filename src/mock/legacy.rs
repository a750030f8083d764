//! The legacy Reporting API: `GET /reporting/accounts/{id}/campaigns/breakdown` and
//! `GET /reporting/accounts/{id}/summary`.
//!
//! Both answer totals over the requested range (there is no interval), with rows under
//! `{"data": {"items": [...]}}` and camelCase fields. Days: from the day of `dateStart` through the
//! day of `dateEnd`; a `dateEnd` at exactly midnight (`2020-04-01T00:00:00.000`) ends the range
//! before that day, so both `..T23:59:59.999` of the last day and midnight of the next day work.
//! The numbers are the Query API's: a breakdown by campaign equals the Query API's totals by
//! `campaign_id` over the same days.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use super::data::{Dim, Group, Num, Query, Report, currency_rate};
use super::query::{forbidden, push_json_str};
use super::{SharedRef, auth, json_response, message};

/// The longest range the legacy endpoints total over, in days (a guard, not a documented limit).
const MAX_LEGACY_DAYS: i64 = 366;

/// `GET /reporting/accounts/{id}/campaigns/breakdown`.
pub(crate) async fn campaigns_breakdown(
    state: State<SharedRef>,
    path: Path<String>,
    params: QueryParams<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    legacy(state, path, params, headers, Endpoint::Breakdown)
}

/// `GET /reporting/accounts/{id}/summary`.
pub(crate) async fn summary(
    state: State<SharedRef>,
    path: Path<String>,
    params: QueryParams<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    legacy(state, path, params, headers, Endpoint::Summary)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Breakdown,
    Summary,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GroupBy {
    Campaign,
    Country,
    PartnerSource,
}

fn legacy(
    State(shared): State<SharedRef>,
    Path(account_id): Path<String>,
    QueryParams(params): QueryParams<HashMap<String, String>>,
    headers: HeaderMap,
    endpoint: Endpoint,
) -> Response {
    if let Some(r) = auth::reject_bearer(&shared, &headers) {
        return r;
    }
    let Some(account) = shared.catalog.account(&account_id) else {
        return forbidden(&account_id);
    };
    let (query, group_by) = match parse(&params, endpoint) {
        Ok(q) => q,
        Err(m) => return message(StatusCode::BAD_REQUEST, &m),
    };
    let catalog = &shared.catalog;
    let groups = catalog.run(account, &query, shared.today());
    let mut out = String::with_capacity(64 + groups.len() * 300);
    out.push_str("{\"data\":{\"items\":[");
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        match group_by {
            None => {
                out.push_str("\"accountId\":");
                push_json_str(&mut out, &account.id);
            }
            Some(by) => {
                out.push_str("\"groupByValue\":");
                push_json_str(&mut out, catalog.dim_value(account, &query, 0, g));
                if by == GroupBy::Campaign {
                    out.push_str(",\"campaignName\":");
                    push_json_str(&mut out, catalog.campaign_name(account, g.key[0]));
                }
            }
        }
        write_metrics(&mut out, g);
        out.push('}');
    }
    out.push_str("]}}");
    shared.counters.rows(groups.len() as u64);
    json_response(StatusCode::OK, out)
}

/// The legacy metrics, in the Query API's terms (so both APIs agree on every number).
const LEGACY_METRICS: &[(&str, &str)] = &[
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

fn write_metrics(out: &mut String, g: &Group) {
    for (name, slug) in LEGACY_METRICS {
        let value = Report::Campaigns
            .metric(slug)
            .map(|m| (m.value)(&g.sums))
            .unwrap_or(Num::Int(0));
        let _ = write!(out, ",\"{name}\":");
        value.write(out);
    }
}

fn parse(
    params: &HashMap<String, String>,
    endpoint: Endpoint,
) -> Result<(Query, Option<GroupBy>), String> {
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
        None => 100,
        Some(c) => currency_rate(c).ok_or_else(|| {
            format!("currency \"{c}\" is not one of AUD CAD EUR GBP JPY NZD SGD USD KRW CNY")
        })?,
    };
    if let Some(tz) = params.get("timeZoneVariation")
        && tz.parse::<chrono_tz::Tz>().is_err()
    {
        return Err(format!(
            "timeZoneVariation \"{tz}\" is not an Olson time zone name"
        ));
    }
    let group_by = match endpoint {
        Endpoint::Summary => None,
        Endpoint::Breakdown => Some(match params.get("groupby").map(String::as_str) {
            None | Some("campaign") => GroupBy::Campaign,
            Some("country") => GroupBy::Country,
            Some("partner-source") => GroupBy::PartnerSource,
            Some(other) => {
                return Err(format!(
                    "groupby \"{other}\" is not one of campaign, country, partner-source"
                ));
            }
        }),
    };
    let (dims, chain): (Vec<Dim>, Option<&'static [Dim]>) = match group_by {
        None => (vec![], None),
        Some(GroupBy::Campaign) => (vec![Dim::CampaignId], None),
        Some(GroupBy::Country) => (vec![Dim::CampaignCountry], None),
        Some(GroupBy::PartnerSource) => (vec![Dim::PartnerSource], Some(&[Dim::PartnerSource])),
    };
    let query = Query {
        report: Report::Campaigns,
        dims,
        metrics: vec![],
        start: start_day,
        end_exclusive,
        interval: false,
        currency_rate: rate,
        filters: vec![],
        order_by: vec![],
        chain,
    };
    Ok((query, group_by))
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
            Endpoint::Breakdown,
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
        let bad = [
            params(&[("dateEnd", "2020-03-01")]),
            params(&[
                ("dateStart", "2020-03-02"),
                ("dateEnd", "2020-03-01T00:00:00.000"),
            ]),
            params(&[
                ("dateStart", "2020-03-01"),
                ("dateEnd", "2020-03-01"),
                ("groupby", "x"),
            ]),
            params(&[
                ("dateStart", "2020-03-01"),
                ("dateEnd", "2020-03-01"),
                ("currency", "XXX"),
            ]),
            params(&[("dateStart", "03/01/2020"), ("dateEnd", "2020-03-01")]),
        ];
        for p in bad {
            assert!(parse(&p, Endpoint::Breakdown).is_err(), "{p:?}");
        }
    }
}
