//! The simulated Rokt API over real HTTP on loopback: auth, validation, data shape and consistency,
//! restatement, fault injection, counters, determinism, and the `mock-api` command.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::slice;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use reqwest::StatusCode;
use rokt_export::mock::{Faults, MockConfig, MockServer};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

const TODAY: &str = "2026-03-20";

fn config() -> MockConfig {
    MockConfig {
        today: day(TODAY),
        ..MockConfig::default()
    }
}

async fn start() -> MockServer {
    MockServer::start(config()).await.unwrap()
}

fn client() -> reqwest::Client {
    rokt_export::tls::install_crypto_provider();
    reqwest::Client::builder().build().unwrap()
}

/// Asks for a token with the server's own credentials.
async fn token(server: &MockServer, client: &reqwest::Client) -> String {
    let creds = server.credentials();
    let answer: Value = client
        .post(format!("{}/auth/oauth2/token", server.base_url()))
        .basic_auth(
            creds.app_id().expose_secret(),
            Some(creds.app_secret().expose_secret()),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

/// A connected client with a token.
struct Api {
    server: MockServer,
    client: reqwest::Client,
    token: String,
}

impl Api {
    async fn new(server: MockServer) -> Api {
        let client = client();
        let token = token(&server, &client).await;
        Api {
            server,
            client,
            token,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, String) {
        let r = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// A campaigns report that must succeed; its `data` rows.
    async fn campaigns(&self, account: &str, body: &Value) -> Vec<Value> {
        self.report(&format!("/v1/query/accounts/{account}/campaigns/"), body)
            .await
    }

    /// A Query API report at `path` that must succeed; its `data` rows.
    async fn report(&self, path: &str, body: &Value) -> Vec<Value> {
        let (status, text) = self.post(path, body).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert!(path.contains(answer["accountId"].as_str().unwrap()));
        assert!(answer["queryTimeMs"].is_u64());
        answer["data"].as_array().unwrap().clone()
    }

    /// A legacy Reporting API answer that must succeed; its `data.items`.
    async fn items(&self, path: &str) -> Vec<Value> {
        let (status, text) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        answer["data"]["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: no data.items in {text}"))
            .clone()
    }

    /// The campaign ids of an account, from the Query API.
    async fn campaign_ids(&self, account: &str) -> Vec<String> {
        let b = body(
            "2026-03-01",
            "2026-03-02",
            &["campaign_id"],
            &["impressions"],
            false,
        );
        let rows = self.campaigns(account, &b).await;
        rows.iter()
            .map(|r| r["campaign_id"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn body(start: &str, end: &str, dims: &[&str], metrics: &[&str], interval: bool) -> Value {
    let mut b = json!({
        "startDate": start, "endDate": end, "dimensions": dims, "metrics": metrics,
        "currencyCode": "USD", "timezoneVariation": "UTC",
    });
    if interval {
        b["interval"] = "day".into();
    }
    b
}

fn int(row: &Value, key: &str) -> i64 {
    row[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} in {row}"))
}

fn num(row: &Value, key: &str) -> f64 {
    row[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} in {row}"))
}

/// `row[key]` in hundredths: exact for counts and for money (two decimals).
fn hundredths(row: &Value, key: &str) -> i64 {
    (num(row, key) * 100.0).round() as i64
}

fn days_of(rows: &[Value]) -> BTreeSet<String> {
    rows.iter()
        .map(|r| r["datetime"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Authentication

#[tokio::test]
async fn mock_token_endpoint_issues_bearer_tokens() {
    let server = start().await;
    let client = client();
    let creds = server.credentials();
    let answer: Value = client
        .post(format!("{}/auth/oauth2/token", server.base_url()))
        .basic_auth("demo-app-id", Some("demo-app-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 3600);
    assert!(answer["access_token"].as_str().unwrap().len() > 20);
    assert_eq!(creds.app_id().expose_secret(), "demo-app-id");
    let a = token(&server, &client).await;
    let b = token(&server, &client).await;
    assert_ne!(a, b, "every token is new");
    assert!(!server.base_url().ends_with('/'));
}

#[tokio::test]
async fn mock_token_endpoint_rejects_bad_requests_with_400_or_403_never_401() {
    let server = start().await;
    let client = client();
    let url = format!("{}/auth/oauth2/token", server.base_url());
    let grant = [("grant_type", "client_credentials")];
    let cases = [
        (
            "missing Authorization",
            client.post(&url).form(&grant),
            400,
            "invalid_request",
        ),
        (
            "wrong secret",
            client
                .post(&url)
                .basic_auth("demo-app-id", Some("wrong"))
                .form(&grant),
            403,
            "invalid_client",
        ),
        (
            "unknown app id",
            client
                .post(&url)
                .basic_auth("someone-else", Some("demo-app-secret"))
                .form(&grant),
            400,
            "invalid_client",
        ),
        (
            "bad grant",
            client
                .post(&url)
                .basic_auth("demo-app-id", Some("demo-app-secret"))
                .form(&[("grant_type", "password")]),
            400,
            "unsupported_grant_type",
        ),
        (
            "missing grant",
            client
                .post(&url)
                .basic_auth("demo-app-id", Some("demo-app-secret"))
                .form(&[("scope", "x")]),
            400,
            "invalid_request",
        ),
        (
            "JSON instead of a form",
            client
                .post(&url)
                .basic_auth("demo-app-id", Some("demo-app-secret"))
                .json(&json!({"grant_type": "client_credentials"})),
            400,
            "invalid_request",
        ),
        (
            "Bearer instead of Basic",
            client.post(&url).bearer_auth("x").form(&grant),
            400,
            "invalid_request",
        ),
    ];
    for (what, request, status, error) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["error"], error, "{what}: {answer}");
        assert!(answer["error_description"].is_string(), "{what}");
    }
    assert_eq!(server.counters().token_requests, 7);
}

#[tokio::test]
async fn mock_api_paths_need_a_known_bearer_token() {
    let api = Api::new(start().await).await;
    let url = api.url("/v1/query/accounts");
    let none = api.client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.json::<Value>().await.unwrap()["message"].is_string());
    let unknown = api
        .client
        .get(&url)
        .bearer_auth("mock.not-issued")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    let body = body("2026-03-01", "2026-03-02", &[], &["impressions"], false);
    let unknown_post = api
        .client
        .post(api.url("/v1/query/accounts/3141592/campaigns/"))
        .bearer_auth("mock.not-issued")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_post.status(), 401);
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
}

#[tokio::test]
async fn mock_revoked_tokens_are_answered_401() {
    let mut api = Api::new(start().await).await;
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
    api.server.revoke_tokens();
    let (status, text) = api.get("/v1/query/accounts").await;
    assert_eq!(status, 401);
    assert!(serde_json::from_str::<Value>(&text).unwrap()["message"].is_string());
    // A new token works; the admin endpoint revokes it too.
    api.token = token(&api.server, &api.client).await;
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
    let r = api
        .client
        .post(api.url("/__mock/revoke-tokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(api.get("/v1/query/accounts").await.0, 401);
}

#[tokio::test]
async fn mock_expired_tokens_are_answered_401() {
    let server = start().await;
    let client = client();
    // Tokens issued under this fault are expired the moment they are issued: no waiting.
    server.set_faults(Faults {
        token_lifetime_secs: Some(0),
        ..Faults::default()
    });
    let creds = server.credentials();
    let answer: Value = client
        .post(format!("{}/auth/oauth2/token", server.base_url()))
        .basic_auth(
            creds.app_id().expose_secret(),
            Some(creds.app_secret().expose_secret()),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["expires_in"], 0);
    let expired = answer["access_token"].as_str().unwrap();
    let r = client
        .get(format!("{}/v1/query/accounts", server.base_url()))
        .bearer_auth(expired)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    // An early expiry is announced in expires_in, so a client can plan its renewal.
    server.set_faults(Faults {
        token_lifetime_secs: Some(1),
        ..Faults::default()
    });
    let short: Value = client
        .post(format!("{}/auth/oauth2/token", server.base_url()))
        .basic_auth("demo-app-id", Some("demo-app-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(short["expires_in"], 1);
    // Without the fault, tokens last their configured lifetime again.
    server.set_faults(Faults::default());
    let fresh = token(&server, &client).await;
    let r = client
        .get(format!("{}/v1/query/accounts", server.base_url()))
        .bearer_auth(fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn mock_token_lifetime_is_configurable() {
    let server = MockServer::start(MockConfig {
        token_lifetime: Duration::from_secs(120),
        ..config()
    })
    .await
    .unwrap();
    let client = client();
    let answer: Value = client
        .post(format!("{}/auth/oauth2/token", server.base_url()))
        .basic_auth("demo-app-id", Some("demo-app-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["expires_in"], 120);
}

// ---------------------------------------------------------------------------------------------
// Shapes

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

// ---------------------------------------------------------------------------------------------
// Data

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

// ---------------------------------------------------------------------------------------------
// Legacy Reporting API

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

// ---------------------------------------------------------------------------------------------
// Faults and counters

#[tokio::test]
async fn mock_fault_429_carries_retry_after() {
    let api = Api::new(start().await).await;
    api.server.set_faults(Faults {
        every_nth_429: Some(2),
        retry_after_secs: 7,
        ..Faults::default()
    });
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
    let r = api
        .client
        .get(api.url("/v1/query/accounts"))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
    assert_eq!(api.get("/v1/query/accounts").await.0, 429);
}

#[tokio::test]
async fn mock_faults_500_and_503() {
    let api = Api::new(start().await).await;
    api.server.set_faults(Faults {
        every_nth_500: Some(1),
        ..Faults::default()
    });
    let (status, text) = api.get("/v1/query/accounts").await;
    assert_eq!(status, 500);
    assert!(serde_json::from_str::<Value>(&text).unwrap()["message"].is_string());
    api.server.set_faults(Faults {
        every_nth_503: Some(1),
        ..Faults::default()
    });
    let b = body("2026-03-01", "2026-03-02", &[], &["impressions"], false);
    assert_eq!(
        api.post("/v1/query/accounts/3141592/campaigns/", &b)
            .await
            .0,
        503
    );
    // The token endpoint is never faulted, so a client can always renew.
    let _ = token(&api.server, &api.client).await;
}

#[tokio::test]
async fn mock_fault_malformed_json() {
    let api = Api::new(start().await).await;
    api.server.set_faults(Faults {
        every_nth_malformed: Some(1),
        ..Faults::default()
    });
    let b = body(
        "2026-03-01",
        "2026-03-02",
        &["campaign_id"],
        &["impressions"],
        true,
    );
    let (status, text) = api.post("/v1/query/accounts/3141592/campaigns/", &b).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
}

#[tokio::test]
async fn mock_fault_dropped_connection() {
    let api = Api::new(start().await).await;
    api.server.set_faults(Faults {
        every_nth_drop: Some(2),
        ..Faults::default()
    });
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
    let dropped = api
        .client
        .get(api.url("/v1/query/accounts"))
        .bearer_auth(&api.token)
        .send()
        .await;
    let error = dropped.expect_err("the connection is closed without an answer");
    assert!(error.status().is_none(), "{error}");
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
    assert_eq!(api.server.counters().api_requests_by_status[&0], 1);
}

#[tokio::test]
async fn mock_fault_latency() {
    let api = Api::new(start().await).await;
    api.server.set_faults(Faults {
        latency_ms: 150,
        ..Faults::default()
    });
    let began = Instant::now();
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
    // A lower bound only: the answer cannot come before the injected delay.
    assert!(began.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn mock_faults_are_settable_over_http_and_at_start() {
    let server = MockServer::start(MockConfig {
        faults: Faults {
            every_nth_503: Some(1),
            ..Faults::default()
        },
        ..config()
    })
    .await
    .unwrap();
    let api = Api::new(server).await;
    assert_eq!(api.get("/v1/query/accounts").await.0, 503);
    let r = api
        .client
        .put(api.url("/__mock/faults"))
        .json(&json!({"every_nth_429": 1, "retry_after_secs": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = api.get("/v1/query/accounts").await;
    assert_eq!(status, 429);
    let current: Value = api
        .client
        .get(api.url("/__mock/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current["every_nth_429"], 1);
    assert_eq!(current["every_nth_503"], Value::Null);
    assert_eq!(api.server.faults().retry_after_secs, 3);
    let bad = api
        .client
        .put(api.url("/__mock/faults"))
        .json(&json!({"every_nth_4299": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    api.client
        .put(api.url("/__mock/faults"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
    let state: Value = api
        .client
        .get(api.url("/__mock/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["today"], TODAY);
}

#[tokio::test]
async fn mock_counts_what_it_served() {
    let api = Api::new(start().await).await;
    api.server.reset_counters();
    let _ = token(&api.server, &api.client).await;
    let b = body(
        "2026-03-01",
        "2026-03-03",
        &["campaign_id"],
        &["impressions"],
        true,
    );
    assert_eq!(
        api.campaigns("3141592", &b).await.len(),
        10,
        "two days of five campaigns"
    );
    api.post("/v1/query/accounts/3141592/campaigns/", &json!({}))
        .await;
    api.client
        .get(api.url("/v1/query/accounts"))
        .send()
        .await
        .unwrap();
    api.server.set_faults(Faults {
        every_nth_429: Some(1),
        ..Faults::default()
    });
    api.get("/v1/query/accounts").await;
    api.server.set_faults(Faults::default());
    let c = api.server.counters();
    assert_eq!(c.token_requests, 1);
    assert_eq!(c.api_requests, 4);
    assert_eq!(
        c.api_requests_by_status,
        BTreeMap::from([(200, 1), (400, 1), (401, 1), (429, 1)])
    );
    assert_eq!(c.rows_served, 10);
    assert_eq!(c.max_concurrent_requests, 1);

    // Concurrent requests overlap while each waits out the injected latency.
    api.server.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let (a, b, c) = tokio::join!(
        api.get("/v1/query/accounts"),
        api.get("/v1/query/accounts"),
        api.get("/v1/query/accounts")
    );
    assert_eq!(
        (a.0, b.0, c.0),
        (StatusCode::OK, StatusCode::OK, StatusCode::OK)
    );
    let max = api.server.counters().max_concurrent_requests;
    assert!((2..=3).contains(&max), "{max}");

    // Over HTTP too, and the admin API is not counted.
    let over_http: Value = api
        .client
        .get(api.url("/__mock/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http["api_requests"], 7);
    assert_eq!(over_http["api_requests_by_status"]["200"], 4);
    let r = api
        .client
        .post(api.url("/__mock/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let zero = api.server.counters();
    assert_eq!(zero.api_requests, 0);
    assert_eq!(zero.token_requests, 0);
    assert!(zero.api_requests_by_status.is_empty());
}

#[tokio::test]
async fn mock_stops_when_asked() {
    let server = start().await;
    let addr = server.addr();
    server.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

// ---------------------------------------------------------------------------------------------
// The command

#[tokio::test]
async fn mock_api_command_prints_its_url_and_serves_until_sigterm() {
    let mut child = Command::new(crate::helpers::binary())
        .args([
            "mock-api",
            "--port",
            "0",
            "--today",
            TODAY,
            "--accounts",
            "111,222",
            "--app-secret",
            "s3cret",
        ])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first line names the URL; it is printed only after the port is bound. The pipe is then
    // closed, which must not stop the server (it did once: println! panics on a closed stdout).
    let stdout = child.stdout.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_owned();
    let client = client();
    let answer: Value = client
        .post(format!("{url}/auth/oauth2/token"))
        .basic_auth("demo-app-id", Some("s3cret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["access_token"].as_str().unwrap();
    let accounts: Vec<Value> = client
        .get(format!("{url}/v1/query/accounts"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[1]["accountId"], "222");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
