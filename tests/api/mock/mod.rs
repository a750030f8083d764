//! The simulated Rokt API over real HTTP on loopback: auth, validation, data shape and consistency,
//! restatement, fault injection, counters, determinism, and the `mock-api` command.

mod auth;
mod command;
mod data;
mod faults;
mod legacy;
mod shapes;

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
