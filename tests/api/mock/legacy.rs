//! The legacy Reporting API (`/reporting/...`), as Rokt's endpoint pages document it.

use super::*;

/// The ten days 2026-03-01 to 2026-03-10 in the legacy API's terms (the Query API's
/// `startDate` 2026-03-01, `endDate` 2026-03-11), in the units the Query API bodies of these
/// tests ask for (`body`): the legacy endpoints require both, and a day's numbers depend on the
/// report's zone.
const LEGACY_RANGE: &str = "dateStart=2026-03-01T00:00:00.000&dateEnd=2026-03-10T23:59:59.999&currency=USD&timeZoneVariation=UTC";

/// The units alone, for requests with other dates.
const UNITS: &str = "currency=USD&timeZoneVariation=UTC";

/// A campaign breakdown item's metric fields, as Rokt's page lists them (after `groupByValue`,
/// before the names); a histogram item has them after `intervalTimestamp`.
const CAMPAIGN_ITEM_FIELDS: &[&str] = &[
    "grossCost",
    "netCost",
    "impressions",
    "uniqueSessions",
    "referrals",
    "campaignCountries",
    "campaigns",
    "acquisitionsByConversionDate",
    "acquisitionsByReferralDate",
    "creatives",
    "audiences",
];

/// A transactions breakdown item's fields after `groupByValue`.
const TRANSACTION_ITEM_FIELDS: &[&str] = &[
    "revenue",
    "transactions",
    "placementImpressions",
    "impressions",
    "referrals",
    "purchases",
    "positivePlacementEngagements",
    "rpt",
    "rpm",
];

/// Additive fields of legacy campaign items, with the Query API metric each equals.
const LEGACY_CAMPAIGN_SUMS: &[(&str, &str)] = &[
    ("impressions", "impressions"),
    ("referrals", "referrals"),
    ("grossCost", "gross_cost"),
    ("netCost", "net_cost"),
    ("acquisitionsByReferralDate", "acquisitions"),
    (
        "acquisitionsByConversionDate",
        "acquisitions_by_conversion_time",
    ),
];

/// Additive fields of legacy transactions items, with the Query API metric each equals.
const LEGACY_TRANSACTION_SUMS: &[(&str, &str)] = &[
    ("transactions", "transactions"),
    ("placementImpressions", "layout_impressions"),
    ("impressions", "impressions"),
    ("referrals", "referrals"),
];

/// Additive fields of legacy items that no Query API metric has: compared with the summary's.
const LEGACY_CAMPAIGN_ONLY: &[(&str, &str)] = &[("uniqueSessions", "uniqueSessions")];
const LEGACY_TRANSACTION_ONLY: &[(&str, &str)] = &[
    ("revenue", "revenue"),
    ("purchases", "purchases"),
    (
        "positivePlacementEngagements",
        "positivePlacementEngagements",
    ),
];

/// Fields the simulation once served and Rokt's pages do not have.
const INVENTED_FIELDS: &[&str] = &["referralRate", "costPerReferral", "conversionValue"];

/// The Query API metric slugs of a field table.
fn slugs(fields: &[(&str, &'static str)]) -> Vec<&'static str> {
    fields.iter().map(|(_, slug)| *slug).collect()
}

/// Asserts that the items' fields sum to `total`'s metrics; returns the fields that are `null` in
/// every item (not compared).
fn assert_sums(what: &str, items: &[Value], total: &Value, fields: &[(&str, &str)]) -> Vec<String> {
    let mut null = Vec::new();
    for (field, slug) in fields {
        if items.iter().all(|i| i[*field].is_null()) {
            null.push((*field).to_owned());
            continue;
        }
        let sum: i64 = items.iter().map(|i| hundredths(i, field)).sum();
        assert_eq!(sum, hundredths(total, slug), "{what}: {field}");
    }
    null
}

/// The keys of a JSON object, sorted.
fn keys(item: &Value) -> BTreeSet<&str> {
    item.as_object()
        .unwrap_or_else(|| panic!("not an object: {item}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// `label` and `fields` (and `names`), as a set.
fn expected_keys<'a>(label: &'a str, fields: &[&'a str], names: &[&'a str]) -> BTreeSet<&'a str> {
    std::iter::once(label)
        .chain(fields.iter().copied())
        .chain(names.iter().copied())
        .collect()
}

/// The legacy summary of an account over `range`: `(campaignsSummary, transactionsSummary)`.
async fn summary(api: &Api, account: &str, range: &str) -> (Value, Value) {
    let (status, text) = api
        .get(&format!("/reporting/accounts/{account}/summary?{range}"))
        .await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        keys(&answer),
        BTreeSet::from(["campaignsSummary", "transactionsSummary"]),
        "{text}"
    );
    (
        answer["campaignsSummary"].clone(),
        answer["transactionsSummary"].clone(),
    )
}

#[tokio::test]
async fn mock_legacy_breakdown_totals_by_campaign() {
    let api = Api::new(start().await).await;
    let items = api
        .items(&format!(
            "/reporting/accounts/3141592/campaigns/breakdown?{LEGACY_RANGE}&groupby=campaign"
        ))
        .await;
    assert_eq!(items.len(), 5);
    for item in &items {
        assert_eq!(
            keys(item),
            expected_keys("groupByValue", CAMPAIGN_ITEM_FIELDS, &["campaignName"]),
            "{item}"
        );
        assert!(item["groupByValue"].is_string());
        assert!(item["campaignName"].is_string());
        // One campaign, its two creatives, shown to every audience, in its one country.
        assert_eq!(int(item, "campaigns"), 1, "{item}");
        assert_eq!(int(item, "creatives"), 2, "{item}");
        assert_eq!(int(item, "audiences"), 4, "{item}");
        assert_eq!(int(item, "campaignCountries"), 1, "{item}");
    }
    // The same numbers as the Query API's totals over the same ten days.
    let totals = api
        .campaigns(
            "3141592",
            &body(
                "2026-03-01",
                "2026-03-11",
                &["campaign_id", "campaign_name"],
                &slugs(LEGACY_CAMPAIGN_SUMS),
                false,
            ),
        )
        .await;
    for (item, row) in items.iter().zip(&totals) {
        assert_eq!(item["groupByValue"], row["campaign_id"]);
        assert_eq!(item["campaignName"], row["campaign_name"]);
        assert!(
            assert_sums(
                "by campaign",
                slice::from_ref(item),
                row,
                LEGACY_CAMPAIGN_SUMS
            )
            .is_empty()
        );
    }
    let total_impressions: i64 = items.iter().map(|i| int(i, "impressions")).sum();
    for (groupby, count) in [("country", 0), ("partner-source", 4)] {
        let split = api
            .items(&format!(
                "/reporting/accounts/3141592/campaigns/breakdown?{LEGACY_RANGE}&groupby={groupby}"
            ))
            .await;
        if count > 0 {
            assert_eq!(split.len(), count, "{groupby}");
        }
        assert_eq!(
            split.iter().map(|i| int(i, "impressions")).sum::<i64>(),
            total_impressions,
            "{groupby}"
        );
        for item in &split {
            // Items that mix campaigns name none.
            assert_eq!(
                keys(item),
                expected_keys("groupByValue", CAMPAIGN_ITEM_FIELDS, &[]),
                "{item}"
            );
        }
    }
    let (status, _) = api
        .get(&format!(
            "/reporting/accounts/3141592/campaigns/breakdown?{LEGACY_RANGE}&groupby=weather"
        ))
        .await;
    assert_eq!(status, 400);
    let (status, _) = api
        .get(&format!(
            "/reporting/accounts/3141592/campaigns/breakdown?dateEnd=2026-03-10T23:59:59.999&{UNITS}"
        ))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn mock_legacy_summary_is_the_accounts_campaign_and_transaction_totals() {
    let api = Api::new(start().await).await;
    let (campaigns, transactions) = summary(&api, "2718281", LEGACY_RANGE).await;
    assert_eq!(
        keys(&campaigns),
        CAMPAIGN_ITEM_FIELDS.iter().copied().collect(),
        "{campaigns}"
    );
    assert_eq!(
        keys(&transactions),
        TRANSACTION_ITEM_FIELDS.iter().copied().collect(),
        "{transactions}"
    );
    let days = ("2026-03-01", "2026-03-11");
    let campaign_totals = api
        .campaigns(
            "2718281",
            &body(days.0, days.1, &[], &slugs(LEGACY_CAMPAIGN_SUMS), false),
        )
        .await;
    assert!(
        assert_sums(
            "campaignsSummary",
            slice::from_ref(&campaigns),
            &campaign_totals[0],
            LEGACY_CAMPAIGN_SUMS
        )
        .is_empty()
    );
    let transaction_totals = api
        .report(
            "/v1/query/accounts/2718281/transactions",
            &body(days.0, days.1, &[], &slugs(LEGACY_TRANSACTION_SUMS), false),
        )
        .await;
    assert!(
        assert_sums(
            "transactionsSummary",
            slice::from_ref(&transactions),
            &transaction_totals[0],
            LEGACY_TRANSACTION_SUMS
        )
        .is_empty()
    );
    // Distinct counts over the account: its 5 campaigns and 10 creatives, each once, however
    // many days they ran; the countries its campaigns run in.
    let countries = api
        .campaigns(
            "2718281",
            &body(
                days.0,
                days.1,
                &["campaign_country"],
                &["impressions"],
                false,
            ),
        )
        .await;
    assert_eq!(int(&campaigns, "campaigns"), 5);
    assert_eq!(int(&campaigns, "creatives"), 10);
    assert_eq!(int(&campaigns, "audiences"), 4);
    assert_eq!(int(&campaigns, "campaignCountries"), countries.len() as i64);
    // Ratios from the summary's own parts.
    let rpt = num(&transactions, "revenue") / num(&transactions, "transactions");
    assert!(
        (num(&transactions, "rpt") - rpt).abs() < 1e-4,
        "{transactions}"
    );
    // No day up to today: zeros, still both objects.
    let (empty, _) = summary(
        &api,
        "2718281",
        &format!("dateStart=2027-01-01&dateEnd=2027-01-02&{UNITS}"),
    )
    .await;
    assert_eq!(int(&empty, "impressions"), 0);
    assert_eq!(int(&empty, "campaigns"), 0);
}

/// A legacy path, the item's label, its fields, its names, how many items.
type ShapeCase<'a> = (String, &'a str, &'a [&'a str], &'a [&'a str], usize);

#[tokio::test]
async fn mock_legacy_endpoints_answer_items_with_the_documented_shape() {
    let api = Api::new(start().await).await;
    let campaign = &api.campaign_ids("3141592").await[2];
    let a = "/reporting/accounts/3141592";
    let c = format!("{a}/campaigns/{campaign}");
    let names: &[&str] = &["campaignName"];
    let with_creative: &[&str] = &["campaignName", "creativeName"];
    let cases: Vec<ShapeCase> = vec![
        (
            format!(
                "{a}/transactions/breakdown?{LEGACY_RANGE}&timeZoneVariation=America/Chicago&groupby=pagetype"
            ),
            "groupByValue",
            TRANSACTION_ITEM_FIELDS,
            &[],
            3,
        ),
        (
            format!("{a}/transactions/breakdown?{LEGACY_RANGE}&groupby=brand"),
            "groupByValue",
            TRANSACTION_ITEM_FIELDS,
            &[],
            5,
        ),
        // The production DAG's call, and the campaign-level default.
        (
            format!("{c}/breakdown?{LEGACY_RANGE}&groupby=creative"),
            "groupByValue",
            CAMPAIGN_ITEM_FIELDS,
            with_creative,
            2,
        ),
        (
            format!("{c}/breakdown?{LEGACY_RANGE}"),
            "groupByValue",
            CAMPAIGN_ITEM_FIELDS,
            with_creative,
            2,
        ),
        (
            format!("{c}/breakdown?{LEGACY_RANGE}&groupby=audience"),
            "groupByValue",
            CAMPAIGN_ITEM_FIELDS,
            names,
            4,
        ),
        (
            format!("{c}/breakdown?{LEGACY_RANGE}&groupby=country"),
            "groupByValue",
            CAMPAIGN_ITEM_FIELDS,
            names,
            1,
        ),
        (
            format!("{c}/breakdown?{LEGACY_RANGE}&groupby=subvertical"),
            "groupByValue",
            CAMPAIGN_ITEM_FIELDS,
            names,
            8,
        ),
        (
            format!("{a}/campaigns/breakdown?{LEGACY_RANGE}&groupby=partner-source"),
            "groupByValue",
            CAMPAIGN_ITEM_FIELDS,
            &[],
            4,
        ),
        (
            format!(
                "{c}/histogram?dateStart=2026-03-01T00:00:00.000&dateEnd=2026-03-10T23:59:59.999&currency=USD&timeZoneVariation=Australia/Sydney"
            ),
            "intervalTimestamp",
            CAMPAIGN_ITEM_FIELDS,
            &[],
            10,
        ),
    ];
    api.server.reset_counters();
    let mut served = 0;
    for (path, label, fields, names, count) in &cases {
        let items = api.items(path).await;
        assert_eq!(items.len(), *count, "{path}");
        served += items.len() as u64;
        let labels: BTreeSet<&str> = items.iter().map(|i| i[label].as_str().unwrap()).collect();
        assert_eq!(labels.len(), items.len(), "one item per {label}: {path}");
        for item in &items {
            assert_eq!(
                keys(item),
                expected_keys(label, fields, names),
                "{path}: {item}"
            );
            for field in fields.iter() {
                assert!(item[field].is_number(), "{field} in {item}");
            }
            for name in names.iter() {
                assert!(item[name].is_string(), "{name} in {item}");
            }
            for invented in INVENTED_FIELDS {
                assert!(item.get(invented).is_none(), "{invented} in {item}");
            }
        }
    }
    let histogram = api.items(&cases[8].0).await;
    let days: Vec<&str> = histogram
        .iter()
        .map(|i| i["intervalTimestamp"].as_str().unwrap())
        .collect();
    assert_eq!(days[0], "2026-03-01T00:00:00.000");
    assert_eq!(days[9], "2026-03-10T00:00:00.000");
    // Nothing after today, as in the Query API.
    let march =
        format!("dateStart=2026-03-01T00:00:00.000&dateEnd=2026-03-31T23:59:59.999&{UNITS}");
    let late = api.items(&format!("{c}/histogram?{march}")).await;
    assert_eq!(late.len(), 20, "2026-03-01 to today (2026-03-20)");
    assert_eq!(api.server.counters().rows_served, served + 10 + 20);
}

#[tokio::test]
async fn mock_legacy_requires_currency_and_time_zone_naming_the_missing_one() {
    let api = Api::new(start().await).await;
    let campaign = &api.campaign_ids("3141592").await[0];
    let a = "/reporting/accounts/3141592";
    let days = "dateStart=2026-03-01&dateEnd=2026-03-11";
    let paths = [
        format!("{a}/summary?{days}"),
        format!("{a}/campaigns/breakdown?{days}"),
        format!("{a}/transactions/breakdown?{days}&groupby=age"),
        format!("{a}/campaigns/{campaign}/breakdown?{days}&groupby=creative"),
        format!("{a}/campaigns/{campaign}/histogram?{days}"),
    ];
    let cases = [
        ("&timeZoneVariation=UTC", "currency is required"),
        ("&currency=USD", "timeZoneVariation is required"),
        ("", "currency and timeZoneVariation are required"),
    ];
    for path in &paths {
        for (units, expected) in cases {
            let (status, text) = api.get(&format!("{path}{units}")).await;
            assert_eq!(status, 400, "{path}{units}: {text}");
            let message = serde_json::from_str::<Value>(&text).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(message.starts_with(expected), "{path}{units}: {message}");
        }
        assert_eq!(api.get(&format!("{path}&{UNITS}")).await.0, 200, "{path}");
    }
}

#[tokio::test]
async fn mock_legacy_a_plain_date_end_is_exclusive_as_the_production_client_sends_it() {
    let api = Api::new(start().await).await;
    let campaign = &api.campaign_ids("3141592").await[1];
    // The one day 2026-03-04, in the Query API: startDate 03-04, endDate 03-05 (exclusive).
    let day = api
        .campaigns(
            "3141592",
            &body(
                "2026-03-04",
                "2026-03-05",
                &[],
                &slugs(LEGACY_CAMPAIGN_SUMS),
                false,
            ),
        )
        .await;
    // The production DAG: dateStart=D&dateEnd=D+1. The legacy pages' example form (the last
    // moment of D) and midnight of D+1 mean the same day.
    for range in [
        "dateStart=2026-03-04&dateEnd=2026-03-05",
        "dateStart=2026-03-04T00:00:00.000&dateEnd=2026-03-04T23:59:59.999",
        "dateStart=2026-03-04T00:00:00.000&dateEnd=2026-03-05T00:00:00.000",
    ] {
        let (campaigns, _) = summary(&api, "3141592", &format!("{range}&{UNITS}")).await;
        assert!(
            assert_sums(
                range,
                slice::from_ref(&campaigns),
                &day[0],
                LEGACY_CAMPAIGN_SUMS
            )
            .is_empty()
        );
        let histogram = api
            .items(&format!(
                "/reporting/accounts/3141592/campaigns/{campaign}/histogram?{range}&{UNITS}"
            ))
            .await;
        let days: Vec<&str> = histogram
            .iter()
            .map(|i| i["intervalTimestamp"].as_str().unwrap())
            .collect();
        assert_eq!(days, ["2026-03-04T00:00:00.000"], "{range}");
    }
    // D to D is no day at all: a 400 that says how to ask for one.
    let (status, text) = api
        .get(&format!(
            "/reporting/accounts/3141592/summary?dateStart=2026-03-04&dateEnd=2026-03-04&{UNITS}"
        ))
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("dateStart=D&dateEnd=D+1"), "{text}");
}

#[tokio::test]
async fn mock_the_shipped_legacy_job_asks_for_exactly_its_window() {
    use rokt_export::api::ApiClient;
    use rokt_export::config::{Config, Env, JobKind, template::Values};
    let server = start().await;
    let env = Env::default().with("ROKT_API_BASE_URL", &server.base_url());
    let config = Config::load(&crate::helpers::shipped_config(), &env).unwrap();
    let job = config.job("campaign_breakdown_legacy").unwrap();
    let JobKind::Generic(generic) = &job.kind else {
        panic!("the shipped legacy job is not a generic job")
    };
    let api = ApiClient::new(&config.api, server.credentials()).unwrap();
    // A window of the two days 2026-03-04 and 2026-03-05, as a run expands it.
    let (start, last) = (day("2026-03-04"), day("2026-03-05"));
    let end = day("2026-03-06");
    let values = Values {
        account_id: "3141592",
        start_date: start,
        last_date: last,
        timezone: "UTC",
        currency: "USD",
    };
    let answer: Value = api.generic(generic, &values).await.unwrap().json().unwrap();
    let items = answer["data"]["items"].as_array().unwrap();
    let totals = server.query_rows_in(
        "3141592",
        "campaigns",
        &["campaign_id".to_owned()],
        &["impressions".to_owned()],
        start,
        end,
        "UTC",
        "USD",
    );
    let two_days: i64 = totals.iter().map(|r| int(r, "impressions")).sum();
    let served: i64 = items.iter().map(|i| int(i, "impressions")).sum();
    assert_eq!(served, two_days, "the window's days, no more, no fewer");
}

#[tokio::test]
async fn mock_legacy_transactions_breakdown_splits_the_transactions_totals() {
    let api = Api::new(start().await).await;
    let report = "/v1/query/accounts/2718281/transactions";
    let metrics = slugs(LEGACY_TRANSACTION_SUMS);
    let totals = api
        .report(
            report,
            &body("2026-03-01", "2026-03-11", &[], &metrics, false),
        )
        .await;
    let by_page_type = api
        .report(
            report,
            &body("2026-03-01", "2026-03-11", &["page_type"], &metrics, false),
        )
        .await;
    let (_, transactions_summary) = summary(&api, "2718281", LEGACY_RANGE).await;
    let groupings = [
        ("age", 6),
        ("brand", 5),
        ("gender", 3),
        ("page", 4),
        ("pagetype", 3),
        ("placement", 3),
        ("position", 3),
    ];
    for (groupby, count) in groupings {
        let items = api
            .items(&format!(
                "/reporting/accounts/2718281/transactions/breakdown?{LEGACY_RANGE}&groupby={groupby}"
            ))
            .await;
        assert_eq!(items.len(), count, "{groupby}");
        let mut null = assert_sums(groupby, &items, &totals[0], LEGACY_TRANSACTION_SUMS);
        null.extend(assert_sums(
            groupby,
            &items,
            &transactions_summary,
            LEGACY_TRANSACTION_ONLY,
        ));
        // Rokt: the placement breakdown has no page-level metrics.
        let page_level: &[&str] = if groupby == "placement" {
            &["transactions", "purchases"]
        } else {
            &[]
        };
        assert_eq!(null, page_level, "{groupby}");
        for item in &items {
            assert_eq!(item["rpt"].is_null(), groupby == "placement", "{item}");
            let rpm = num(item, "revenue") * 1000.0 / num(item, "impressions");
            assert!((num(item, "rpm") - rpm).abs() < 1e-4, "{item}");
        }
        if groupby == "pagetype" {
            for (item, row) in items.iter().zip(&by_page_type) {
                assert_eq!(item["groupByValue"], row["page_type"]);
                assert!(
                    assert_sums(
                        "pagetype",
                        slice::from_ref(item),
                        row,
                        LEGACY_TRANSACTION_SUMS
                    )
                    .is_empty()
                );
            }
        }
    }
}

/// A `groupby`, the Query API rows its items equal, the column they are keyed by, and the
/// distinct counts of every item (creatives, audiences).
type BreakdownCase<'a> = (&'a str, Vec<&'a Value>, &'a str, (i64, i64));

#[tokio::test]
async fn mock_legacy_campaign_breakdown_and_histogram_are_that_campaigns_rows() {
    let api = Api::new(start().await).await;
    let metrics = slugs(LEGACY_CAMPAIGN_SUMS);
    let by = |dims: &[&str], interval| body("2026-03-01", "2026-03-11", dims, &metrics, interval);
    let by_campaign = api
        .campaigns("2718281", &by(&["campaign_id", "campaign_name"], false))
        .await;
    let daily = api.campaigns("2718281", &by(&["campaign_id"], true)).await;
    let by_creative = api
        .campaigns(
            "2718281",
            &by(&["campaign_id", "creative_id", "creative_name"], false),
        )
        .await;
    let by_audience = api
        .campaigns("2718281", &by(&["campaign_id", "audience_name"], false))
        .await;
    let (account, _) = summary(&api, "2718281", LEGACY_RANGE).await;
    assert_eq!(by_campaign.len(), 5);
    let mut sessions = 0;
    for total in &by_campaign {
        let id = total["campaign_id"].as_str().unwrap();
        let base = format!("/reporting/accounts/2718281/campaigns/{id}");
        let cases: [BreakdownCase; 4] = [
            (
                "creative",
                by_creative
                    .iter()
                    .filter(|r| r["campaign_id"] == id)
                    .collect(),
                "creative_id",
                (1, 4),
            ),
            (
                "audience",
                by_audience
                    .iter()
                    .filter(|r| r["campaign_id"] == id)
                    .collect(),
                "audience_name",
                (2, 1),
            ),
            ("country", vec![], "", (2, 4)),
            ("subvertical", vec![], "", (2, 4)),
        ];
        for (groupby, rows, column, (creatives, audiences)) in cases {
            let items = api
                .items(&format!(
                    "{base}/breakdown?{LEGACY_RANGE}&groupby={groupby}"
                ))
                .await;
            let what = format!("{id} by {groupby}");
            assert!(assert_sums(&what, &items, total, LEGACY_CAMPAIGN_SUMS).is_empty());
            for item in &items {
                assert_eq!(item["campaignName"], total["campaign_name"], "{what}");
                assert_eq!(int(item, "campaigns"), 1, "{what}: {item}");
                assert_eq!(int(item, "campaignCountries"), 1, "{what}: {item}");
                assert_eq!(int(item, "creatives"), creatives, "{what}: {item}");
                assert_eq!(int(item, "audiences"), audiences, "{what}: {item}");
            }
            if !rows.is_empty() {
                assert_eq!(items.len(), rows.len(), "{what}");
                for (item, row) in items.iter().zip(&rows) {
                    assert_eq!(item["groupByValue"], row[column], "{what}");
                    if groupby == "creative" {
                        assert_eq!(item["creativeName"], row["creative_name"], "{what}");
                    }
                    assert!(
                        assert_sums(&what, slice::from_ref(item), row, LEGACY_CAMPAIGN_SUMS)
                            .is_empty()
                    );
                }
            }
            if groupby == "creative" {
                sessions += items.iter().map(|i| int(i, "uniqueSessions")).sum::<i64>();
            }
        }
        let histogram = api.items(&format!("{base}/histogram?{LEGACY_RANGE}")).await;
        let days: Vec<&Value> = daily.iter().filter(|r| r["campaign_id"] == id).collect();
        assert_eq!(histogram.len(), days.len());
        for (item, row) in histogram.iter().zip(days) {
            let day = &row["datetime"].as_str().unwrap()[..10];
            assert!(item["intervalTimestamp"].as_str().unwrap().starts_with(day));
            assert!(assert_sums(day, slice::from_ref(item), row, LEGACY_CAMPAIGN_SUMS).is_empty());
        }
        assert!(assert_sums(id, &histogram, total, LEGACY_CAMPAIGN_SUMS).is_empty());
        // A distinct count over days is not their sum: the campaign counts once in its total.
        assert_eq!(
            histogram.iter().map(|i| int(i, "campaigns")).sum::<i64>(),
            10
        );
    }
    // The campaigns together make up the account's summary.
    assert!(
        assert_sums(
            "summary",
            slice::from_ref(&account),
            &api.campaigns("2718281", &by(&[], false)).await[0],
            LEGACY_CAMPAIGN_SUMS
        )
        .is_empty()
    );
    assert!(
        assert_sums(
            "summary",
            &[json!({"uniqueSessions": sessions})],
            &account,
            LEGACY_CAMPAIGN_ONLY
        )
        .is_empty()
    );
}

#[tokio::test]
async fn mock_legacy_bad_parameters_are_400_with_a_message() {
    let api = Api::new(start().await).await;
    let campaign = &api.campaign_ids("3141592").await[0];
    let t = "/reporting/accounts/3141592/transactions/breakdown";
    let a = "/reporting/accounts/3141592/campaigns/breakdown";
    let b = format!("/reporting/accounts/3141592/campaigns/{campaign}/breakdown");
    let h = format!("/reporting/accounts/3141592/campaigns/{campaign}/histogram");
    let r = LEGACY_RANGE;
    let cases = [
        (
            format!("{t}?{r}"),
            "groupby is required: one of age, brand, gender, page, pagetype, placement, position",
        ),
        (
            format!("{t}?{r}&groupby=campaign"),
            "groupby \"campaign\" is not one of age",
        ),
        (
            format!("{b}?{r}&groupby=pagetype"),
            "groupby \"pagetype\" is not one of creative, audience, country, subvertical",
        ),
        // The account-level and the campaign-level breakdowns take different groupings.
        (
            format!("{b}?{r}&groupby=campaign"),
            "groupby \"campaign\" is not one of creative",
        ),
        (
            format!("{a}?{r}&groupby=creative"),
            "groupby \"creative\" is not one of campaign, country, partner-source",
        ),
        (
            format!("{h}?dateEnd=2026-03-10T23:59:59.999&{UNITS}"),
            "dateStart is required",
        ),
        (
            format!("{h}?dateStart=2026-03-01T00:00:00.000&{UNITS}"),
            "dateEnd is required",
        ),
        (
            format!("{b}?dateStart=03/01/2026&dateEnd=2026-03-10&{UNITS}"),
            "dateStart \"03/01/2026\" is not a date-time",
        ),
        (
            format!("{h}?dateStart=2026-03-10&dateEnd=2026-03-01T00:00:00.000&{UNITS}"),
            "must be after dateStart",
        ),
        (
            format!("{t}?dateStart=2025-01-01&dateEnd=2026-03-10&groupby=age&{UNITS}"),
            "longer than 366 days",
        ),
        (
            format!(
                "{h}?dateStart=2026-03-01&dateEnd=2026-03-11&currency=XXX&timeZoneVariation=UTC"
            ),
            "currency \"XXX\" is not one of",
        ),
        (
            format!(
                "{b}?dateStart=2026-03-01&dateEnd=2026-03-11&currency=USD&timeZoneVariation=Mars/Base"
            ),
            "timeZoneVariation \"Mars/Base\"",
        ),
    ];
    for (path, expected) in &cases {
        let (status, text) = api.get(path).await;
        assert_eq!(status, 400, "{path}: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(expected), "{path}: {message}");
    }
}

#[tokio::test]
async fn mock_legacy_paths_check_token_then_account_then_campaign() {
    let api = Api::new(start().await).await;
    let ids = api.campaign_ids("3141592").await;
    let other = &api.campaign_ids("2718281").await[0];
    let paths = |account: &str, campaign: &str| {
        [
            format!("/reporting/accounts/{account}/summary?{LEGACY_RANGE}"),
            format!("/reporting/accounts/{account}/campaigns/breakdown?{LEGACY_RANGE}"),
            format!(
                "/reporting/accounts/{account}/transactions/breakdown?{LEGACY_RANGE}&groupby=age"
            ),
            format!("/reporting/accounts/{account}/campaigns/{campaign}/breakdown?{LEGACY_RANGE}"),
            format!("/reporting/accounts/{account}/campaigns/{campaign}/histogram?{LEGACY_RANGE}"),
        ]
    };
    for path in paths("3141592", &ids[0]) {
        for token in [None, Some("mock.not-issued")] {
            let mut request = api.client.get(api.url(&path));
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 401, "{path} with {token:?}");
            assert!(r.json::<Value>().await.unwrap()["message"].is_string());
        }
        assert_eq!(api.get(&path).await.0, 200, "{path}");
        assert_eq!(
            api.get(&path.replace("3141592", "999")).await.0,
            403,
            "{path}"
        );
    }
    // A campaign the account does not have is 404, also one of another account, and before the
    // parameters are looked at.
    for campaign in ["999", "not a campaign", other.as_str()] {
        for path in &paths("3141592", &campaign.replace(' ', "%20"))[3..] {
            let bad_parameters = path.replace("dateStart", "dateBegin");
            for path in [path, &bad_parameters] {
                let (status, text) = api.get(path).await;
                assert_eq!(status, 404, "{path}: {text}");
                let answer: Value = serde_json::from_str(&text).unwrap();
                let expected = format!("campaign {campaign} was not found in account 3141592");
                assert_eq!(answer["message"], expected);
            }
        }
    }
}

#[tokio::test]
async fn mock_faults_apply_to_the_legacy_paths() {
    let api = Api::new(start().await).await;
    let campaign = &api.campaign_ids("3141592").await[0];
    let path = format!("/reporting/accounts/3141592/campaigns/{campaign}/histogram?{LEGACY_RANGE}");
    api.server.set_faults(Faults {
        every_nth_503: Some(2),
        every_nth_malformed: Some(3),
        ..Faults::default()
    });
    api.server.reset_counters();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let (status, text) = api.get(&path).await;
        answers.push((
            status.as_u16(),
            serde_json::from_str::<Value>(&text).is_ok(),
        ));
    }
    // 200, then 503, then 200 with a body that is not JSON.
    assert_eq!(answers, [(200, true), (503, true), (200, false)]);
    let c = api.server.counters();
    assert_eq!(c.api_requests, 3);
    assert_eq!(c.rows_served, 10);
}
