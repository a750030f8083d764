//! What the endpoints answer: accounts, help, the reports' shapes, paths and bad bodies.

use super::*;

#[tokio::test]
async fn mock_accounts_lists_the_configured_accounts() {
    let server = MockServer::start(MockConfig {
        accounts: vec!["3141592".into(), "2718281".into(), "1618033".into()],
        ..config()
    })
    .await
    .unwrap();
    let api = Api::new(server).await;
    let (status, text) = api.get("/v1/query/accounts").await;
    assert_eq!(status, 200);
    let accounts: Vec<Value> = serde_json::from_str(&text).unwrap();
    let ids: Vec<&str> = accounts
        .iter()
        .map(|a| a["accountId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["3141592", "2718281", "1618033"]);
    for a in &accounts {
        for key in [
            "accountName",
            "countryCode",
            "accountCurrencyCode",
            "accountTimezone",
            "accountOwner",
        ] {
            assert!(a[key].is_string(), "{key} in {a}");
        }
        assert!(a["accountOwner"].as_str().unwrap().contains('@'), "{a}");
    }
    // Each its own country, zone and currency; the offset in minutes (PostHog's reading), east
    // of UTC, on the simulation's today (2026-03-20: New York on daylight time, Sydney too).
    let units: Vec<(&str, &str, &str, i64)> = accounts
        .iter()
        .map(|a| {
            (
                a["countryCode"].as_str().unwrap(),
                a["accountTimezone"].as_str().unwrap(),
                a["accountCurrencyCode"].as_str().unwrap(),
                a["accountTimezoneOffset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        units,
        [
            ("US", "America/New_York", "USD", -240),
            ("AU", "Australia/Sydney", "AUD", 660),
            ("GB", "Europe/London", "GBP", 0),
        ]
    );
}

#[tokio::test]
async fn mock_help_lists_dimensions_and_metrics() {
    use rokt_export::catalogue::Report;
    let api = Api::new(start().await).await;
    // The US account has everything: its help is the catalogue, slugs and descriptions, in its
    // order (one list of slugs, which the simulation serves).
    for report in Report::ALL {
        let (status, text) = api
            .get(&format!(
                "/v1/query/accounts/3141592/{}/help",
                report.name()
            ))
            .await;
        assert_eq!(status, 200, "{text}");
        let help: Value = serde_json::from_str(&text).unwrap();
        let listed = |key: &str| -> Vec<(String, String)> {
            help[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["slug"].as_str().unwrap().to_owned(),
                        d["description"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        };
        let dimensions: Vec<(String, String)> = report
            .dimensions()
            .iter()
            .map(|d| (d.slug.to_owned(), d.description.to_owned()))
            .collect();
        let metrics: Vec<(String, String)> = report
            .metrics()
            .iter()
            .map(|m| (m.slug.to_owned(), m.description.to_owned()))
            .collect();
        assert_eq!(listed("dimensions"), dimensions, "{}", report.name());
        assert_eq!(listed("metrics"), metrics, "{}", report.name());
    }
    // The slugs real clients use (rokt-api.md) are among them.
    let (_, text) = api.get("/v1/query/accounts/3141592/campaigns/help").await;
    for slug in [
        "campaign_id",
        "campaign_name",
        "campaign_objective",
        "campaign_country",
        "creative_id",
        "creative_name",
        "audience_name",
        "age_range",
        "gender",
        "device",
        "impressions",
        "referrals",
        "referral_rate",
        "gross_cost",
        "net_cost",
        "cpr",
        "cpa",
        "acquisitions",
        "click_thru_acquisitions",
        "view_thru_acquisitions",
        "acquisitions_by_conversion_time",
        "conversions",
        "conversion_rate",
        "conversion_value",
        "acquisition_roas",
        "conversion_roas",
        "cost_per_impression",
        "click_thru_cpa",
        "view_thru_cpa",
        "click_thru_conversions",
        "view_thru_conversions",
        "click_thru_conversion_rate",
        "view_thru_conversion_rate",
        "copi",
        "acquisitions_value",
        "acquisition_aov",
        "conversion_aov",
        "unique_campaigns",
        "unique_creatives",
        "unique_audiences",
        "unique_campaign_countries",
        "click_thru_acquisitions_by_conversion_time",
        "view_thru_conversions_by_conversion_time",
        "click_thru_conversion_value",
        "view_thru_conversion_value",
        "click_thru_acquisition_value",
        "view_thru_acquisitions_value",
    ] {
        assert!(text.contains(&format!("\"slug\":\"{slug}\"")), "{slug}");
    }
}

#[tokio::test]
async fn mock_transactions_report_serves_the_slugs_posthog_uses() {
    let api = Api::new(start().await).await;
    let posthog = [
        "transactions",
        "page_transactions",
        "rokt_transactions_per_transaction",
        "impressions",
        "layout_impressions",
        "referrals",
        "referral_rate",
    ];
    let path = "/v1/query/accounts/3141592/transactions";
    let rows = api
        .report(
            path,
            &body("2026-03-01", "2026-03-08", &["page_type"], &posthog, true),
        )
        .await;
    assert_eq!(rows.len(), 7 * 3);
    for row in &rows {
        assert!(
            int(row, "page_transactions") <= int(row, "transactions"),
            "{row}"
        );
        let share = int(row, "page_transactions") as f64 / int(row, "transactions") as f64;
        assert!(
            (num(row, "rokt_transactions_per_transaction") - share).abs() < 1e-6,
            "{row}"
        );
    }
    // Slugs the simulation once invented are unknown now.
    for invented in [
        "revenue",
        "engagements",
        "engagement_rate",
        "revenue_per_mille",
        "purchases",
    ] {
        let (status, text) = api
            .post(
                path,
                &body("2026-03-01", "2026-03-02", &[], &[invented], false),
            )
            .await;
        assert_eq!(status, 400, "{invented}: {text}");
        assert!(text.contains("unknown metric"), "{text}");
    }
}

#[tokio::test]
async fn mock_non_additive_metrics_are_computed_from_their_parts() {
    let api = Api::new(start().await).await;
    let additive = [
        "impressions",
        "referrals",
        "gross_cost",
        "acquisitions",
        "click_thru_acquisitions",
        "view_thru_acquisitions",
        "conversions",
        "click_thru_conversions",
        "view_thru_conversions",
        "acquisitions_by_conversion_time",
        "click_thru_acquisitions_by_conversion_time",
        "view_thru_acquisitions_by_conversion_time",
        "conversions_by_conversion_time",
        "click_thru_conversions_by_conversion_time",
        "view_thru_conversions_by_conversion_time",
        "conversion_value",
        "click_thru_conversion_value",
        "view_thru_conversion_value",
        "acquisitions_value",
        "click_thru_acquisition_value",
        "view_thru_acquisitions_value",
    ];
    let ratios = [
        "referral_rate",
        "cpr",
        "cpa",
        "copi",
        "click_thru_cpa",
        "view_thru_cpa",
        "conversion_rate",
        "click_thru_conversion_rate",
        "view_thru_conversion_rate",
        "acquisition_aov",
        "conversion_aov",
        "acquisition_roas",
        "conversion_roas",
        "cost_per_impression",
    ];
    let distinct = [
        "unique_campaigns",
        "unique_creatives",
        "unique_audiences",
        "unique_campaign_countries",
    ];
    let metrics: Vec<&str> = additive
        .iter()
        .chain(&ratios)
        .chain(&distinct)
        .copied()
        .collect();
    let daily = api
        .campaigns(
            "3141592",
            &body("2026-03-01", "2026-03-11", &[], &metrics, true),
        )
        .await;
    let total = &api
        .campaigns(
            "3141592",
            &body("2026-03-01", "2026-03-11", &[], &metrics, false),
        )
        .await[0];
    assert_eq!(daily.len(), 10);
    let sum = |key: &str| -> f64 { daily.iter().map(|r| num(r, key)).sum() };
    // Counts and money: the total is the sum of the days; a whole is its click- and
    // view-through parts.
    for key in additive {
        assert_eq!(
            hundredths(total, key),
            (sum(key) * 100.0).round() as i64,
            "{key}"
        );
    }
    for row in daily.iter().chain(std::iter::once(total)) {
        for (whole, click, view) in [
            (
                "acquisitions",
                "click_thru_acquisitions",
                "view_thru_acquisitions",
            ),
            (
                "conversions",
                "click_thru_conversions",
                "view_thru_conversions",
            ),
            (
                "acquisitions_by_conversion_time",
                "click_thru_acquisitions_by_conversion_time",
                "view_thru_acquisitions_by_conversion_time",
            ),
            (
                "conversions_by_conversion_time",
                "click_thru_conversions_by_conversion_time",
                "view_thru_conversions_by_conversion_time",
            ),
            (
                "conversion_value",
                "click_thru_conversion_value",
                "view_thru_conversion_value",
            ),
            (
                "acquisitions_value",
                "click_thru_acquisition_value",
                "view_thru_acquisitions_value",
            ),
        ] {
            assert_eq!(
                hundredths(row, whole),
                hundredths(row, click) + hundredths(row, view),
                "{whole}"
            );
            assert!(hundredths(row, view) >= 0, "{view} in {row}");
        }
    }
    // Ratios: the total's is computed from the total's parts, not summed (nor averaged).
    let close = |key: &str, expected: f64| {
        let got = num(total, key);
        assert!(
            (got - expected).abs() <= 1e-6 * expected.abs().max(1.0),
            "{key}: {got} != {expected}"
        );
        assert!(
            (got - sum(key)).abs() > 1e-3 * got.abs(),
            "{key} is the sum of its days"
        );
    };
    let t = |key: &str| num(total, key);
    close("referral_rate", t("referrals") / t("impressions"));
    close("cpr", t("gross_cost") / t("referrals"));
    close("cpa", t("gross_cost") / t("acquisitions"));
    close("copi", t("gross_cost") * 1000.0 / t("impressions"));
    close("cost_per_impression", t("gross_cost") / t("impressions"));
    close(
        "click_thru_cpa",
        t("gross_cost") / t("click_thru_acquisitions"),
    );
    close(
        "view_thru_cpa",
        t("gross_cost") / t("view_thru_acquisitions"),
    );
    close("conversion_rate", t("conversions") / t("referrals"));
    close(
        "click_thru_conversion_rate",
        t("click_thru_conversions") / t("referrals"),
    );
    close(
        "view_thru_conversion_rate",
        t("view_thru_conversions") / t("impressions"),
    );
    close(
        "acquisition_aov",
        t("acquisitions_value") / t("acquisitions"),
    );
    close("conversion_aov", t("conversion_value") / t("conversions"));
    close(
        "acquisition_roas",
        t("acquisitions_value") / t("gross_cost"),
    );
    close("conversion_roas", t("conversion_value") / t("gross_cost"));
    // Distinct counts: each campaign, creative, audience and country once over the ten days.
    let countries = api
        .campaigns(
            "3141592",
            &body(
                "2026-03-01",
                "2026-03-11",
                &["campaign_country"],
                &["impressions"],
                false,
            ),
        )
        .await
        .len() as i64;
    for (key, expected) in [
        ("unique_campaigns", 5),
        ("unique_creatives", 10),
        ("unique_audiences", 4),
        ("unique_campaign_countries", countries),
    ] {
        assert_eq!(int(total, key), expected, "{key}");
        for row in &daily {
            assert_eq!(int(row, key), expected, "{key} on one day");
        }
        assert_eq!(sum(key) as i64, 10 * expected, "{key} summed over days");
    }
    // Per campaign and audience, a row has one of each.
    let rows = api
        .campaigns(
            "3141592",
            &body(
                "2026-03-01",
                "2026-03-02",
                &["campaign_id", "audience_id", "audience_name"],
                &distinct,
                false,
            ),
        )
        .await;
    assert_eq!(rows.len(), 5 * 4);
    for row in &rows {
        assert_eq!(int(row, "unique_campaigns"), 1, "{row}");
        assert_eq!(int(row, "unique_audiences"), 1, "{row}");
        assert!(
            row["audience_id"].as_str().unwrap().starts_with("aud-"),
            "{row}"
        );
    }
}

#[tokio::test]
async fn mock_help_varies_by_account_and_reports_agree_with_it() {
    let api = Api::new(start().await).await;
    // (account, slugs its help leaves out)
    let cases: [(&str, &[&str]); 2] = [
        ("3141592", &[]),
        ("2718281", &["conversion_roas", "cost_per_impression"]),
    ];
    let (_, all) = api.get("/v1/query/accounts/3141592/campaigns/help").await;
    let all: Value = serde_json::from_str(&all).unwrap();
    let slugs = |help: &Value, key: &str| -> BTreeSet<String> {
        help[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["slug"].as_str().unwrap().to_owned())
            .collect()
    };
    for (account, lacks) in cases {
        let (status, text) = api
            .get(&format!("/v1/query/accounts/{account}/campaigns/help"))
            .await;
        assert_eq!(status, 200, "{text}");
        let help: Value = serde_json::from_str(&text).unwrap();
        let metrics = slugs(&help, "metrics");
        let every = slugs(&all, "metrics");
        let missing: Vec<&String> = every.difference(&metrics).collect();
        assert_eq!(missing, lacks, "{account}");
        // Every metric and dimension help lists can be asked for at once...
        let metrics: Vec<&str> = metrics.iter().map(String::as_str).collect();
        let dims = slugs(&help, "dimensions");
        let dims: Vec<&str> = dims.iter().map(String::as_str).collect();
        let b = body("2026-03-01", "2026-03-02", &dims, &metrics, false);
        assert!(!api.campaigns(account, &b).await.is_empty());
        // ...and what it leaves out is a 400 that points at it.
        for slug in lacks {
            let b = body("2026-03-01", "2026-03-02", &[], &[slug], false);
            let (status, text) = api
                .post(&format!("/v1/query/accounts/{account}/campaigns/"), &b)
                .await;
            assert_eq!(status, 400, "{text}");
            let message = serde_json::from_str::<Value>(&text).unwrap()["message"].clone();
            let help_path = format!("/v1/query/accounts/{account}/campaigns/help");
            assert!(message.as_str().unwrap().contains(&help_path), "{message}");
        }
    }
}

#[tokio::test]
async fn mock_accounts_the_credentials_cannot_see_are_403() {
    let api = Api::new(start().await).await;
    let b = body("2026-03-01", "2026-03-02", &[], &["impressions"], false);
    let (status, text) = api.post("/v1/query/accounts/999/campaigns/", &b).await;
    assert_eq!(status, 403);
    assert!(serde_json::from_str::<Value>(&text).unwrap()["message"].is_string());
    assert_eq!(
        api.post("/v1/query/accounts/999/transactions", &b).await.0,
        403
    );
    assert_eq!(
        api.get("/v1/query/accounts/999/campaigns/help").await.0,
        403
    );
    assert_eq!(
        api.get("/reporting/accounts/999/campaigns/breakdown?dateStart=2026-03-01T00:00:00.000&dateEnd=2026-03-01T23:59:59.999")
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn mock_campaigns_path_needs_its_trailing_slash() {
    let api = Api::new(start().await).await;
    let b = body("2026-03-01", "2026-03-02", &[], &["impressions"], false);
    // Without it, the path is one the gateway does not know: 403, as for any unknown path.
    let (status, text) = api.post("/v1/query/accounts/3141592/campaigns", &b).await;
    assert_eq!(status, 403, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"message": "Missing Authentication Token"})
    );
    assert_eq!(
        api.post("/v1/query/accounts/3141592/campaigns/", &b)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn mock_unknown_paths_and_methods_answer_like_api_gateway() {
    let api = Api::new(start().await).await;
    let gateway = json!({"message": "Missing Authentication Token"});
    let cases = [
        ("GET", "/v1/query/nothing-here"),
        ("GET", "/reporting/accounts/3141592/campaigns/breakdwon"),
        ("GET", "/v2/query/accounts"),
        ("GET", "/"),
        // A known path with a method it does not take.
        ("POST", "/v1/query/accounts"),
        ("GET", "/v1/query/accounts/3141592/campaigns/"),
        ("DELETE", "/reporting/accounts/3141592/summary"),
    ];
    for (method, path) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        // With a valid token and without one: the gateway answers before any token check.
        for token in [Some(api.token.as_str()), None] {
            let mut request = api.client.request(method.clone(), api.url(path));
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 403, "{method} {path}");
            assert_eq!(r.json::<Value>().await.unwrap(), gateway, "{method} {path}");
        }
    }
    // The admin API is no gateway's: an unknown admin path is 404.
    let r = api
        .client
        .get(api.url("/__mock/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn mock_each_invalid_report_body_is_400_with_a_message() {
    let api = Api::new(start().await).await;
    let ok =
        json!({"startDate": "2026-03-01", "endDate": "2026-03-02", "metrics": ["impressions"]});
    let with = |key: &str, value: Value| {
        let mut b = ok.clone();
        b[key] = value;
        b
    };
    let without = |key: &str| {
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove(key);
        b
    };
    let cases = [
        (without("startDate"), "startDate is required"),
        (without("endDate"), "endDate is required"),
        (with("startDate", json!("03/01/2026")), "not a date"),
        (with("endDate", json!("2026-02-30")), "not a date"),
        (with("endDate", json!("2026-03-01")), "exclusive"),
        (with("endDate", json!("2026-02-27")), "must be after"),
        (with("endDate", json!("2026-04-02")), "at most 31"),
        (without("metrics"), "at least one metric"),
        (with("metrics", json!([])), "at least one metric"),
        (
            with("metrics", json!(["impressions", "nope"])),
            "unknown metric",
        ),
        (with("metrics", json!("impressions")), "list"),
        (
            with("dimensions", json!(["campaign_id", "nope"])),
            "unknown dimension",
        ),
        (
            with("dimensions", json!(["partner_vertical"])),
            "unknown dimension",
        ),
        (
            with(
                "orderBys",
                json!([{"column": "datetime", "direction": "asc"}]),
            ),
            "datetime",
        ),
        (
            with("orderBys", json!([{"column": "referrals"}])),
            "requested",
        ),
        (with("interval", json!("week")), "interval"),
        (
            with("timezoneVariation", json!("Mars/Olympus")),
            "time zone",
        ),
        (with("currencyCode", json!("XYZ")), "currencyCode"),
        (
            with("dimensionFilters", json!({"nope": ["x"]})),
            "unknown dimension",
        ),
    ];
    for (b, needle) in cases {
        let (status, text) = api.post("/v1/query/accounts/3141592/campaigns/", &b).await;
        assert_eq!(status, 400, "{b} answered {text}");
        let message = serde_json::from_str::<Value>(&text).unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains(needle), "{b}: {message}");
    }
    // Not JSON at all.
    let r = api
        .client
        .post(api.url("/v1/query/accounts/3141592/campaigns/"))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body("{\"startDate\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    // The transactions report knows its own slugs only.
    let (status, _) = api
        .post(
            "/v1/query/accounts/3141592/transactions",
            &with("dimensions", json!(["campaign_id"])),
        )
        .await;
    assert_eq!(status, 400);
}
