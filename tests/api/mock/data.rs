//! The numbers: exclusive end dates, no rows after today, totals that add up, restatement, determinism.

use super::*;

#[tokio::test]
async fn mock_end_date_is_exclusive() {
    let api = Api::new(start().await).await;
    let rows = api
        .campaigns(
            "3141592",
            &body(
                "2026-03-04",
                "2026-03-06",
                &["campaign_id", "campaign_name"],
                &["impressions", "referrals", "gross_cost"],
                true,
            ),
        )
        .await;
    assert_eq!(rows.len(), 2 * 5, "two days times five campaigns");
    assert_eq!(
        days_of(&rows),
        BTreeSet::from([
            "2026-03-04T00:00:00Z".to_owned(),
            "2026-03-05T00:00:00Z".to_owned()
        ])
    );
    let mut per_campaign: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rows {
        *per_campaign
            .entry(r["campaign_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
        assert!(r["impressions"].is_u64());
        assert!(r["gross_cost"].is_number());
    }
    assert!(per_campaign.values().all(|n| *n == 2), "{per_campaign:?}");
    // Ids are strings.
    assert!(rows[0]["campaign_id"].is_string());
}

#[tokio::test]
async fn mock_serves_no_rows_after_today() {
    let api = Api::new(start().await).await;
    let rows = api
        .campaigns(
            "3141592",
            &body(
                "2026-03-19",
                "2026-03-25",
                &["campaign_id"],
                &["impressions"],
                true,
            ),
        )
        .await;
    assert_eq!(
        days_of(&rows),
        BTreeSet::from([
            "2026-03-19T00:00:00Z".to_owned(),
            "2026-03-20T00:00:00Z".to_owned()
        ])
    );
    let future = api
        .campaigns(
            "3141592",
            &body(
                "2026-03-21",
                "2026-03-25",
                &["campaign_id"],
                &["impressions"],
                true,
            ),
        )
        .await;
    assert!(future.is_empty());
}

#[tokio::test]
async fn mock_totals_without_interval_equal_the_sum_of_daily_rows() {
    let api = Api::new(start().await).await;
    let metrics = [
        "impressions",
        "referrals",
        "acquisitions",
        "gross_cost",
        "cpa",
    ];
    let daily = api
        .campaigns(
            "2718281",
            &body("2026-03-01", "2026-03-11", &["campaign_id"], &metrics, true),
        )
        .await;
    let totals = api
        .campaigns(
            "2718281",
            &body(
                "2026-03-01",
                "2026-03-11",
                &["campaign_id"],
                &metrics,
                false,
            ),
        )
        .await;
    assert_eq!(daily.len(), 50);
    assert_eq!(totals.len(), 5);
    for t in &totals {
        assert!(t.get("datetime").is_none(), "{t}");
        let id = &t["campaign_id"];
        let mine: Vec<&Value> = daily.iter().filter(|d| &d["campaign_id"] == id).collect();
        for m in ["impressions", "referrals", "acquisitions"] {
            assert_eq!(
                int(t, m),
                mine.iter().map(|d| int(d, m)).sum::<i64>(),
                "{m}"
            );
        }
        let cost: f64 = mine.iter().map(|d| num(d, "gross_cost")).sum();
        assert!((num(t, "gross_cost") - cost).abs() < 0.005);
        // Ratios are computed from the sums, not summed.
        let cpa = num(t, "gross_cost") / int(t, "acquisitions") as f64;
        assert!((num(t, "cpa") - cpa).abs() < 1e-5, "{t}");
    }
}

#[tokio::test]
async fn mock_campaign_rows_equal_the_sum_of_their_creative_rows() {
    let api = Api::new(start().await).await;
    let metrics = ["impressions", "referrals", "conversions", "gross_cost"];
    let creatives = api
        .campaigns(
            "3141592",
            &body(
                "2026-03-01",
                "2026-03-04",
                &["campaign_id", "creative_id", "device"],
                &metrics,
                true,
            ),
        )
        .await;
    let campaigns = api
        .campaigns(
            "3141592",
            &body("2026-03-01", "2026-03-04", &["campaign_id"], &metrics, true),
        )
        .await;
    assert_eq!(creatives.len(), 3 * 10 * 3);
    for c in &campaigns {
        let parts: Vec<&Value> = creatives
            .iter()
            .filter(|r| r["campaign_id"] == c["campaign_id"] && r["datetime"] == c["datetime"])
            .collect();
        assert_eq!(parts.len(), 2 * 3);
        for m in ["impressions", "referrals", "conversions"] {
            assert_eq!(int(c, m), parts.iter().map(|r| int(r, m)).sum::<i64>());
        }
    }
}

#[tokio::test]
async fn mock_restatement_changes_only_the_last_seven_days() {
    let api = Api::new(start().await).await;
    let metrics = [
        "impressions",
        "gross_cost",
        "acquisitions",
        "conversions",
        "conversion_value",
        "acquisitions_by_conversion_time",
    ];
    let b = body("2026-03-05", "2026-03-25", &["campaign_id"], &metrics, true);
    let before = api.campaigns("3141592", &b).await;
    api.server.advance_time(1);
    assert_eq!(api.server.today(), day("2026-03-21"));
    let after = api.campaigns("3141592", &b).await;
    assert_eq!(after.len(), before.len() + 5, "the new today has rows");
    let today = day(TODAY);
    let key = |r: &Value| format!("{}{}", r["datetime"], r["campaign_id"]);
    let after_by_key: BTreeMap<String, &Value> = after.iter().map(|r| (key(r), r)).collect();
    let (mut frozen, mut restated) = (0, 0);
    for old in &before {
        let new = after_by_key[&key(old)];
        let d = day(&old["datetime"].as_str().unwrap()[..10]);
        assert_eq!(old["impressions"], new["impressions"]);
        assert_eq!(old["gross_cost"], new["gross_cost"]);
        assert_eq!(
            old["acquisitions_by_conversion_time"],
            new["acquisitions_by_conversion_time"]
        );
        if d <= today - chrono::Days::new(7) {
            assert_eq!(old, new, "{d} is outside the attribution window");
            frozen += 1;
        } else {
            assert!(int(new, "acquisitions") > int(old, "acquisitions"), "{d}");
            assert!(int(new, "conversions") > int(old, "conversions"), "{d}");
            assert!(
                num(new, "conversion_value") > num(old, "conversion_value"),
                "{d}"
            );
            restated += 1;
        }
    }
    assert_eq!(restated, 7 * 5);
    assert_eq!(frozen, (before.len() - 35));
    // The admin endpoint moves time too.
    let r = api
        .client
        .post(api.url("/__mock/advance?days=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["today"],
        json!("2026-03-23")
    );
    assert_eq!(api.server.today(), day("2026-03-23"));
}

#[tokio::test]
async fn mock_answers_are_deterministic_across_servers() {
    let a = Api::new(start().await).await;
    let b = Api::new(start().await).await;
    let q = body(
        "2026-02-20",
        "2026-03-20",
        &["campaign_id", "campaign_name", "device", "gender"],
        &[
            "impressions",
            "referrals",
            "gross_cost",
            "acquisitions",
            "referral_rate",
        ],
        true,
    );
    let path = "/v1/query/accounts/3141592/campaigns/";
    let (sa, ta) = a.post(path, &q).await;
    let (sb, tb) = b.post(path, &q).await;
    assert_eq!(sa, 200);
    assert_eq!(sb, 200);
    assert_eq!(ta, tb, "same request, same bytes");
    assert_eq!(a.post(path, &q).await.1, ta, "and again on the same server");
    let other = Api::new(
        MockServer::start(MockConfig {
            seed: 43,
            ..config()
        })
        .await
        .unwrap(),
    )
    .await;
    assert_ne!(
        other.post(path, &q).await.1,
        ta,
        "another seed, other numbers"
    );
}

#[tokio::test]
async fn mock_query_rows_equal_what_http_answers() {
    let api = Api::new(start().await).await;
    let shapes: &[(&str, &[&str], &[&str], bool)] = &[
        (
            "campaigns",
            &["campaign_id", "campaign_name"],
            &["impressions", "referrals", "gross_cost", "acquisitions"],
            true,
        ),
        (
            "campaigns",
            &[],
            &["impressions", "cpa", "acquisition_roas"],
            false,
        ),
        (
            "campaigns",
            &["creative_name", "age_range", "audience_name"],
            &["conversions", "conversion_value"],
            true,
        ),
        (
            "transactions",
            &["partner_vertical", "page_type"],
            &[
                "transactions",
                "page_transactions",
                "rokt_transactions_per_transaction",
                "referral_rate",
            ],
            true,
        ),
    ];
    for (report, dims, metrics, interval) in shapes {
        let path = match *report {
            "campaigns" => "/v1/query/accounts/2718281/campaigns/",
            _ => "/v1/query/accounts/2718281/transactions",
        };
        let mut b = body("2026-03-01", "2026-03-15", dims, metrics, *interval);
        // Neither named: the account's own, as `query_rows` answers.
        b.as_object_mut().unwrap().remove("timezoneVariation");
        b.as_object_mut().unwrap().remove("currencyCode");
        let (status, text) = api.post(path, &b).await;
        assert_eq!(status, 200, "{text}");
        let http: Value = serde_json::from_str(&text).unwrap();
        let strings = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let rows = api.server.query_rows(
            "2718281",
            report,
            &strings(dims),
            &strings(metrics),
            day("2026-03-01"),
            day("2026-03-15"),
            *interval,
        );
        assert!(!rows.is_empty());
        assert_eq!(http["data"].as_array().unwrap(), &rows, "{report} {dims:?}");
    }
    // In process, the range may exceed the API's 31 days; invalid queries are empty.
    let long = api.server.query_rows(
        "3141592",
        "campaigns",
        &["campaign_id".to_owned()],
        &["impressions".to_owned()],
        day("2026-01-01"),
        day("2026-03-21"),
        true,
    );
    assert_eq!(long.len(), 79 * 5);
    assert!(
        api.server
            .query_rows(
                "999",
                "campaigns",
                &[],
                &["impressions".to_owned()],
                day("2026-03-01"),
                day("2026-03-02"),
                false
            )
            .is_empty()
    );
}

#[tokio::test]
async fn mock_filters_and_sorting_apply() {
    let api = Api::new(start().await).await;
    let mut b = body(
        "2026-03-01",
        "2026-03-08",
        &["device", "gender"],
        &["impressions", "referrals"],
        false,
    );
    b["dimensionFilters"] = json!({"device": ["mobile", "tablet"]});
    b["orderBys"] = json!([{"column": "referrals", "direction": "desc"}]);
    let rows = api.campaigns("3141592", &b).await;
    assert_eq!(rows.len(), 2 * 3);
    assert!(rows.iter().all(|r| r["device"] != "desktop"));
    let referrals: Vec<i64> = rows.iter().map(|r| int(r, "referrals")).collect();
    let mut sorted = referrals.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(referrals, sorted);
}

#[tokio::test]
async fn mock_names_that_stress_a_loader_round_trip_through_json() {
    let api = Api::new(start().await).await;
    let rows = api
        .campaigns(
            "3141592",
            &body(
                "2026-03-01",
                "2026-03-02",
                &[
                    "campaign_id",
                    "campaign_name",
                    "creative_name",
                    "audience_name",
                ],
                &["impressions"],
                false,
            ),
        )
        .await;
    let names: String = rows
        .iter()
        .flat_map(|r| {
            [
                r["campaign_name"].as_str().unwrap().to_owned(),
                r["creative_name"].as_str().unwrap().to_owned(),
                r["audience_name"].as_str().unwrap().to_owned(),
            ]
        })
        .collect();
    for needle in ["\"", "'", ";", "\t", "é", "日本語", "🚀", "\\"] {
        assert!(names.contains(needle), "no {needle:?} in the names");
    }
    let (_, text) = api.get("/v1/query/accounts").await;
    let accounts: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(
        accounts[0]["accountName"],
        "Pi Retail \"Outlet\"; Café 日本語 🛒"
    );
    assert!(accounts[1]["accountName"].as_str().unwrap().contains('\t'));
}

#[tokio::test]
async fn mock_transactions_report_has_publisher_dimensions() {
    let api = Api::new(start().await).await;
    let (status, text) = api
        .post(
            "/v1/query/accounts/3141592/transactions",
            &body(
                "2026-03-01",
                "2026-03-03",
                &[
                    "partner_vertical",
                    "partner_sub_vertical",
                    "page_type",
                    "display_type",
                ],
                &[
                    "transactions",
                    "impressions",
                    "referrals",
                    "layout_impressions",
                ],
                true,
            ),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let rows = serde_json::from_str::<Value>(&text).unwrap()["data"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(rows.len(), 2 * 8 * 3 * 3);
    assert!(rows.iter().all(|r| r["datetime"].is_string()));
}

#[tokio::test]
async fn mock_serves_31_days_of_1000_rows() {
    let server = MockServer::start(MockConfig {
        campaigns_per_account: 100,
        creatives_per_campaign: 10,
        ..config()
    })
    .await
    .unwrap();
    let api = Api::new(server).await;
    let rows = api
        .campaigns(
            "3141592",
            &body(
                "2026-02-17",
                "2026-03-20",
                &[
                    "campaign_id",
                    "campaign_name",
                    "creative_id",
                    "creative_name",
                ],
                &["impressions", "referrals", "gross_cost", "acquisitions"],
                true,
            ),
        )
        .await;
    assert_eq!(rows.len(), 31_000);
    assert_eq!(days_of(&rows).len(), 31);
    assert_eq!(api.server.counters().rows_served, 31_000);
}

#[tokio::test]
async fn mock_admin_renames_a_campaign_and_invalidates_a_creative_over_http() {
    let api = Api::new(start().await).await;
    let account = "3141592";
    let campaign = api.server.campaign_ids(account)[0].clone();
    let creative = api.server.creative_ids(account)[0].clone();
    let rows_of = |rows: &[Value], key: &str, id: &str| -> Vec<Value> {
        rows.iter()
            .filter(|r| r[key] == json!(id))
            .cloned()
            .collect()
    };
    let named = body(
        "2026-03-04",
        "2026-03-07",
        &["campaign_id", "campaign_name"],
        &["impressions"],
        true,
    );
    let before = api.campaigns(account, &named).await;
    assert_eq!(rows_of(&before, "campaign_id", &campaign).len(), 3);

    let (status, text) = api
        .post(
            "/__mock/rename-campaign",
            &json!({"account_id": account, "campaign_id": campaign, "name": "Renamed Over HTTP"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    let after = api.campaigns(account, &named).await;
    let renamed = rows_of(&after, "campaign_id", &campaign);
    assert_eq!(renamed.len(), 3, "one row a day still");
    assert!(
        renamed
            .iter()
            .all(|r| r["campaign_name"] == json!("Renamed Over HTTP")),
        "every day shows the new name, past days included: {renamed:?}"
    );
    assert_eq!(before.len(), after.len());
    let (status, _) = api
        .post(
            "/__mock/rename-campaign",
            &json!({"account_id": account, "campaign_id": "no-such", "name": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .post("/__mock/rename-campaign", &json!({"campaign": campaign}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let by_creative = body(
        "2026-03-04",
        "2026-03-07",
        &["creative_id"],
        &["impressions"],
        true,
    );
    let days = |rows: &[Value]| -> BTreeSet<String> {
        rows_of(rows, "creative_id", &creative)
            .iter()
            .map(|r| r["datetime"].as_str().unwrap()[..10].to_owned())
            .collect()
    };
    let before = api.campaigns(account, &by_creative).await;
    assert_eq!(
        days(&before),
        BTreeSet::from([
            "2026-03-04".into(),
            "2026-03-05".into(),
            "2026-03-06".into()
        ])
    );
    let (status, text) = api
        .post(
            "/__mock/invalidate-creative",
            &json!({"account_id": account, "creative_id": creative, "from": "2026-03-05"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    let after = api.campaigns(account, &by_creative).await;
    assert_eq!(
        days(&after),
        BTreeSet::from(["2026-03-04".into()]),
        "its rows from that day on vanished"
    );
    assert_eq!(after.len(), before.len() - 2, "and nothing else");
    let (status, _) = api
        .post(
            "/__mock/invalidate-creative",
            &json!({"account_id": account, "creative_id": "no-such", "from": "2026-03-05"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
