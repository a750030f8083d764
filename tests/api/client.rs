//! The API client against the simulated Rokt API over real HTTP: typed and generic requests,
//! retries (429 with Retry-After, 5xx bursts, dropped connections), the API-wide Retry-After
//! pause, the retry budget, client errors, malformed JSON, the concurrency cap, account ids and
//! paths that cannot leave their endpoint, the rules of `base_url`, and no secret in the logs.
//! What only a hostile server does is in `hostile_peers.rs`.

use std::time::Duration;

use chrono::NaiveDate;
use rokt_export::api::retry::Backoff;
use rokt_export::api::{ApiClient, ApiError, ReportRequest};
use rokt_export::config::template::{Template, Values};
use rokt_export::config::{
    Accounts, Config, Credentials, Env, GenericJob, JobKind, Method, QueryJob, Report,
};
use rokt_export::mock::{Faults, MockConfig, MockServer};
use secrecy::ExposeSecret;

use crate::auth::{api_config, client, env_credentials, mock_with_lifetime};
use crate::helpers::{Captured, MINIMAL_JOB, config_file, shipped_config};

/// The legacy campaign breakdown, as the shipped `jobs.toml` has it.
pub fn legacy_job() -> GenericJob {
    let t = |s: &str| Template::parse(s).unwrap();
    GenericJob {
        method: Method::Get,
        endpoint: t("/reporting/accounts/{account_id}/campaigns/breakdown"),
        query: vec![
            ("dateStart".into(), t("{start_date}T00:00:00.000")),
            ("dateEnd".into(), t("{last_date}T23:59:59.999")),
            ("currency".into(), t("{currency}")),
            ("timeZoneVariation".into(), t("{timezone}")),
            ("groupby".into(), t("campaign")),
        ],
        body: None,
        records: "/data/items".into(),
        key: vec!["groupByValue".into()],
    }
}

/// A one-week window for `account_id`.
pub fn values(account_id: &str) -> Values<'_> {
    let (start, last) = week();
    Values {
        account_id,
        start_date: start,
        last_date: last,
        timezone: "UTC",
        currency: "USD",
    }
}

fn week() -> (NaiveDate, NaiveDate) {
    let last = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    (last - chrono::Days::new(6), last)
}

fn campaigns_job() -> QueryJob {
    QueryJob::new(
        Report::Campaigns,
        vec!["campaign_id".into()],
        vec!["impressions".into(), "referrals".into()],
    )
}

async fn campaigns(
    client: &ApiClient,
    account_id: &str,
) -> Result<rokt_export::api::ApiResponse, ApiError> {
    let (start, last) = week();
    client
        .query_report(&ReportRequest {
            account_id,
            job: &campaigns_job(),
            start,
            last,
            timezone: "UTC",
            currency: "USD",
        })
        .await
}

fn default_mock() -> impl std::future::Future<Output = MockServer> {
    mock_with_lifetime(Duration::from_secs(3600))
}

#[tokio::test]
async fn accounts_reports_and_generic_requests_come_back() {
    let mock = default_mock().await;
    let client = client(&mock, 3);

    let accounts = client.accounts().await.unwrap();
    let ids: Vec<&str> = accounts.iter().map(|a| a.account_id.as_str()).collect();
    assert_eq!(ids, ["3141592", "2718281"]);

    let report = campaigns(&client, "3141592").await.unwrap();
    assert_eq!(
        report.endpoint,
        "POST /v1/query/accounts/3141592/campaigns/"
    );
    assert_eq!(report.attempts, 1);
    let body: serde_json::Value = report.json().unwrap();
    let rows = body["data"].as_array().expect("a data array");
    assert!(!rows.is_empty());
    assert!(rows[0].get("impressions").is_some(), "{}", rows[0]);

    let legacy = client
        .generic(&legacy_job(), &values("3141592"))
        .await
        .unwrap();
    assert_eq!(
        legacy.endpoint,
        "GET /reporting/accounts/3141592/campaigns/breakdown"
    );
    let body: serde_json::Value = legacy.json().unwrap();
    assert!(
        body.pointer("/data/items").is_some_and(|i| i.is_array()),
        "{body}"
    );

    let stats = client.stats();
    assert_eq!(stats.requests_by_status.get(&200), Some(&3));
    assert_eq!(stats.total_requests(), 3);
    assert_eq!(stats.latency.count, 3);
    assert_eq!(stats.token_renewals, 1);
    assert_eq!(stats.retries, 0);
    mock.stop().await;
}

#[tokio::test]
async fn every_job_of_the_shipped_config_is_answered_through_a_client_built_from_it() {
    // The wiring a run uses: jobs.toml and the environment -> ApiConfig and Credentials -> client.
    let mock = default_mock().await;
    let base_url = mock.base_url();
    let env = Env::from_pairs([
        ("ROKT_API_BASE_URL", base_url.as_str()),
        ("ROKT_APP_ID", "demo-app-id"),
        ("ROKT_APP_SECRET", "demo-app-secret"),
    ]);
    let (_dir, minimal) = config_file(&format!(
        "[api]\nmax_retries = 1\nmax_concurrent_requests = 2\n{MINIMAL_JOB}"
    ));
    let (start, last) = week();
    for path in [shipped_config(), minimal] {
        let config = Config::load(&path, &env).unwrap();
        assert_eq!(config.api.base_url, base_url);
        let client = ApiClient::new(&config.api, Credentials::from_env(&env).unwrap()).unwrap();
        let all = client.accounts().await.unwrap();
        for job in &config.jobs {
            let accounts = match &job.accounts {
                Accounts::All => all.iter().map(|a| a.account_id.clone()).collect(),
                Accounts::List(ids) => ids.clone(),
            };
            for account_id in &accounts {
                let timezone = job.timezone.map_or("UTC", |tz| tz.name());
                let currency = job.currency.as_deref().unwrap_or("USD");
                let response = match &job.kind {
                    JobKind::Query(job) => client
                        .query_report(&ReportRequest {
                            account_id,
                            job,
                            start,
                            last,
                            timezone,
                            currency,
                        })
                        .await
                        .unwrap(),
                    JobKind::Generic(g) => {
                        let values = Values {
                            account_id,
                            start_date: start,
                            last_date: last,
                            timezone,
                            currency,
                        };
                        client.generic(g, &values).await.unwrap()
                    }
                };
                response.json::<serde_json::Value>().unwrap();
            }
        }
    }
    mock.stop().await;
}

#[tokio::test]
async fn client_errors_fail_at_once_with_the_api_message() {
    let mock = default_mock().await;
    let client = client(&mock, 5);

    let mut job = campaigns_job();
    job.metrics = vec!["no_such_metric".into()];
    let (start, last) = week();
    let err = client
        .query_report(&ReportRequest {
            account_id: "3141592",
            job: &job,
            start,
            last,
            timezone: "UTC",
            currency: "USD",
        })
        .await
        .unwrap_err();
    match &err {
        ApiError::Status {
            status, message, ..
        } => {
            assert_eq!(*status, 400);
            assert!(message.contains("no_such_metric"), "{message}");
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    assert!(!err.is_retriable());

    // An account the credentials cannot read: 403, which the gateway also answers for an
    // unknown path (issue 16): the message names both causes.
    let err = campaigns(&client, "999").await.unwrap_err();
    match &err {
        ApiError::Status {
            status, endpoint, ..
        } => {
            assert_eq!(*status, 403);
            assert_eq!(endpoint, "POST /v1/query/accounts/999/campaigns/");
        }
        other => panic!("expected a 403, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("path or method is wrong"), "{text}");
    assert!(text.contains("Missing Authentication Token"), "{text}");
    assert!(text.contains("may not read this account"), "{text}");
    assert_eq!(mock.counters().api_requests, 2, "no retries of a 4xx");
    mock.stop().await;
}

#[tokio::test]
async fn account_ids_and_paths_cannot_leave_their_endpoint() {
    // Issue 19, item 7: an id `..` from `accounts = "all"` went into the path unchecked, and a
    // URL parser resolved `/v1/query/accounts/../campaigns/` into another path.
    let mock = MockServer::start(MockConfig {
        accounts: vec!["3141592".into(), "..".into()],
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let client = client(&mock, 3);

    let err = client.accounts().await.unwrap_err();
    assert!(matches!(err, ApiError::Refused { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(r#"the id "..""#), "{text}");
    assert!(!err.is_retriable() && !err.is_unavailable() && !err.is_config());

    let before = mock.counters().api_requests;
    for id in ["..", "31/41", "a b", ""] {
        let err = campaigns(&client, id).await.unwrap_err();
        assert!(matches!(err, ApiError::Refused { .. }), "{id}: {err:?}");
        let err = client
            .generic(&legacy_job(), &values(id))
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::Refused { .. }), "{id}: {err:?}");
    }
    // A generic job's own template: `.` and `..` segments, however spelled, are refused too.
    for endpoint in [
        "/reporting/accounts/{account_id}/../../v1/query/accounts",
        "/reporting/accounts/{account_id}/%2e%2E/summary",
        "/reporting/./accounts/{account_id}/summary",
    ] {
        let mut job = legacy_job();
        job.endpoint = Template::parse(endpoint).unwrap();
        let err = client.generic(&job, &values("3141592")).await.unwrap_err();
        match &err {
            ApiError::Refused { message, .. } => {
                assert!(message.contains("segment"), "{message}")
            }
            other => panic!("{endpoint}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(mock.counters().api_requests, before, "nothing was sent");
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_pauses_every_request_to_the_api() {
    // Issue 19, item 2. Four requests in flight; every 7th is answered 429 with Retry-After: 1.
    // The pause is the API's, not one request's: none of the other requests may arrive before it
    // is over (the simulation counts those that do).
    let mock = default_mock().await;
    let client = client(&mock, 5);
    client.tokens().token().await.unwrap();
    mock.set_faults(Faults {
        every_nth_429: Some(7),
        retry_after_secs: 1,
        latency_ms: 100,
        ..Faults::default()
    });

    let workers: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    client.accounts().await?;
                }
                Ok::<(), ApiError>(())
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap().unwrap();
    }

    let counters = mock.counters();
    assert_eq!(
        counters.api_requests_by_status.get(&200),
        Some(&20),
        "{counters:?}"
    );
    assert!(
        counters
            .api_requests_by_status
            .get(&429)
            .is_some_and(|n| *n >= 2),
        "{counters:?}"
    );
    assert_eq!(
        counters.early_requests, 0,
        "requests arrived during a Retry-After pause: {counters:?}"
    );
    mock.stop().await;
}

#[test]
fn plain_http_is_refused_unless_loopback_or_allowed() {
    // Issue 19, item 5: `ROKT_API_BASE_URL=http://api.rokt.com` validated, and the Basic
    // credentials then travelled in clear.
    let load = |api: &str, env: &[(&str, &str)]| {
        let (_dir, path) = config_file(&format!("[api]\n{api}\n{MINIMAL_JOB}"));
        Config::load(&path, &Env::from_pairs(env.iter().copied()))
    };
    let err = load(r#"base_url = "http://api.rokt.com""#, &[]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("allow_insecure_http"), "{text}");
    let err = load("", &[("ROKT_API_BASE_URL", "http://api.rokt.com")]).unwrap_err();
    assert!(err.to_string().contains("ROKT_API_BASE_URL"), "{err}");

    let allowed = load(
        "allow_insecure_http = true",
        &[("ROKT_API_BASE_URL", "http://api.rokt.com")],
    )
    .unwrap();
    assert_eq!(allowed.api.base_url, "http://api.rokt.com");
    assert!(allowed.api.allow_insecure_http);
    for local in [
        "http://127.0.0.1:8089",
        "http://localhost:8089/",
        "http://[::1]:8089",
    ] {
        let config = load("", &[("ROKT_API_BASE_URL", local)]).unwrap();
        assert!(config.api.base_url.starts_with("http://"), "{local}");
        assert!(!config.api.allow_insecure_http);
    }
    let default = load("", &[]).unwrap();
    assert_eq!(default.api.base_url, "https://api.rokt.com");
    assert_eq!(default.api.max_body_bytes, 128 << 20);

    // A client built in code is held to the same rule.
    let err = ApiClient::new(
        &api_config("http://api.rokt.com", 1),
        Credentials::new("id", "secret"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("allow_insecure_http"), "{err}");
}

#[test]
fn userinfo_in_the_base_url_is_refused_and_never_printed() {
    // Issue 19, item 13: `validate` printed `https://user:password@host`.
    let secret = "pa55%2Fw0rd";
    for url in [
        format!("https://rokt:{secret}@api.rokt.com"),
        format!("https://rokt:{}@api.rokt.com", secret.replace("%2F", "/")),
    ] {
        let (_dir, path) = config_file(&format!("[api]\nbase_url = \"{url}\"\n{MINIMAL_JOB}"));
        let err = Config::load(&path, &Env::default()).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(text.contains("user name or password"), "{text}");
        assert!(!text.contains("pa55"), "{text}");

        let out = crate::helpers::run_binary(
            &[
                "--config",
                crate::helpers::shipped_config().to_str().unwrap(),
                "validate",
            ],
            &[
                ("ROKT_API_BASE_URL", url.as_str()),
                ("ROKT_APP_ID", "id"),
                ("ROKT_APP_SECRET", "secret"),
            ],
        );
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(78), "{shown}");
        assert!(!shown.contains("pa55"), "{shown}");
        assert!(shown.contains("https://***@api.rokt.com"), "{shown}");
    }
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_retry_after_allows() {
    let mock = default_mock().await;
    let client = client(&mock, 3);
    client.accounts().await.unwrap(); // the token, outside the measurement
    mock.set_faults(Faults {
        every_nth_429: Some(2),
        retry_after_secs: 1,
        ..Faults::default()
    });
    campaigns(&client, "3141592").await.unwrap(); // request 1 of the faults: answered

    let started = std::time::Instant::now();
    let response = campaigns(&client, "3141592").await.unwrap(); // request 2: 429, then 3
    let waited = started.elapsed();

    assert_eq!(response.attempts, 2);
    // A correctness bound, not a speed assertion: the retry must not come before Retry-After.
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert_eq!(mock.counters().api_requests_by_status.get(&429), Some(&1));
    assert_eq!(client.stats().retries, 1);
    mock.stop().await;
}

#[tokio::test]
async fn bursts_of_503_500_and_dropped_connections_are_recovered() {
    let mock = default_mock().await;
    let client = client(&mock, 6);
    mock.set_faults(Faults {
        every_nth_503: Some(2),
        every_nth_500: Some(5),
        every_nth_drop: Some(7),
        ..Faults::default()
    });

    let mut attempts = 0;
    for _ in 0..12 {
        attempts += campaigns(&client, "3141592").await.unwrap().attempts;
    }

    let counters = mock.counters();
    let by_status = &counters.api_requests_by_status;
    assert!(by_status.get(&503).is_some_and(|n| *n > 0), "{counters:?}");
    assert!(by_status.get(&500).is_some_and(|n| *n > 0), "{counters:?}");
    assert!(by_status.get(&0).is_some_and(|n| *n > 0), "{counters:?}");
    assert_eq!(by_status.get(&200), Some(&12));
    assert_eq!(u64::from(attempts), counters.api_requests);
    let stats = client.stats();
    assert_eq!(stats.total_requests(), counters.api_requests);
    assert_eq!(stats.retries, counters.api_requests - 12);
    assert!(stats.transport_errors > 0);
    mock.stop().await;
}

#[tokio::test]
async fn an_exhausted_retry_budget_is_a_clear_error() {
    let mock = default_mock().await;
    let client = client(&mock, 2);
    mock.set_faults(Faults {
        every_nth_503: Some(1),
        ..Faults::default()
    });

    let err = campaigns(&client, "3141592").await.unwrap_err();

    match &err {
        ApiError::RetriesExhausted {
            endpoint,
            attempts,
            last,
        } => {
            assert_eq!(endpoint, "POST /v1/query/accounts/3141592/campaigns/");
            assert_eq!(*attempts, 3);
            assert!(last.contains("503"), "{last}");
        }
        other => panic!("expected exhausted retries, got {other:?}"),
    }
    assert!(err.is_unavailable());
    let text = err.to_string();
    assert!(text.contains("3 times") && text.contains("503"), "{text}");
    assert_eq!(mock.counters().api_requests, 3);
    mock.stop().await;
}

#[tokio::test]
async fn malformed_json_names_the_endpoint_and_is_not_retried() {
    let mock = default_mock().await;
    let client = client(&mock, 5);
    mock.set_faults(Faults {
        every_nth_malformed: Some(1),
        ..Faults::default()
    });

    let err = client.accounts().await.unwrap_err();
    match &err {
        ApiError::MalformedJson {
            endpoint,
            line,
            column,
            ..
        } => {
            assert_eq!(endpoint, "GET /v1/query/accounts");
            assert_eq!(*line, 1);
            assert!(*column > 1);
        }
        other => panic!("expected malformed JSON, got {other:?}"),
    }
    assert!(!err.is_retriable());

    let report = campaigns(&client, "3141592").await.unwrap();
    let err = report.json::<serde_json::Value>().unwrap_err();
    assert!(
        err.to_string().starts_with(
            "POST /v1/query/accounts/3141592/campaigns/ returned malformed JSON at line 1"
        ),
        "{err}"
    );
    assert_eq!(
        mock.counters().api_requests,
        2,
        "malformed JSON is not retried"
    );
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_stay_under_the_cap() {
    let mock = default_mock().await;
    let mut api = api_config(&mock.base_url(), 3);
    api.max_concurrent_requests = 2;
    let client = ApiClient::with_backoff(&api, mock.credentials(), Backoff::fast()).unwrap();
    mock.set_faults(Faults {
        latency_ms: 30,
        ..Faults::default()
    });

    let calls: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.accounts().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }

    let counters = mock.counters();
    assert_eq!(counters.api_requests, 8);
    assert!(counters.max_concurrent_requests <= 2, "{counters:?}");
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_permit_is_held_while_a_retry_backs_off() {
    // One request at a time. A's 503 (no Retry-After: the pause is A's own backoff, 3 s) must
    // not keep B out: had A kept its permit through the backoff, B would queue behind A's retry.
    let mock = default_mock().await;
    let mut api = api_config(&mock.base_url(), 3);
    api.max_concurrent_requests = 1;
    let slow = Backoff {
        base: Duration::from_secs(3),
        cap: Duration::from_secs(3),
        jitter: rokt_export::api::retry::Jitter::Off,
        ..Backoff::default()
    };
    let client = ApiClient::with_backoff(&api, mock.credentials(), slow).unwrap();
    client.tokens().token().await.unwrap();
    mock.set_faults(Faults {
        every_nth_503: Some(1),
        ..Faults::default()
    });
    let a = tokio::spawn({
        let client = client.clone();
        async move { client.accounts().await }
    });
    // Polls the simulation's counters (not a guess at how long anything takes) for A's 503.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !mock.counters().api_requests_by_status.contains_key(&503) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A never got its 503"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    mock.set_faults(Faults::default());

    let b = client.accounts().await.unwrap();

    assert_eq!(b.len(), 2);
    assert!(!a.is_finished(), "A retried before its backoff ended");
    a.abort();
    mock.stop().await;
}

#[tokio::test] // current-thread: every span and event of the run lands in this thread's subscriber
async fn trace_logs_of_a_whole_run_hold_no_secret() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // While only one dispatcher is registered, tracing-core computes a callsite's cached interest
    // from the subscriber of whichever thread hits it first: a test running on another thread
    // (no subscriber) would cache "never" for events this run must capture. A second live
    // dispatcher makes it consult every registered one instead.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());

    let mock = default_mock().await;
    let credentials = mock.credentials();
    let app_secret = credentials.app_secret().expose_secret().to_owned();
    let basic = credentials.basic_authorization().expose_secret().to_owned();
    let client = client(&mock, 6);
    let mut issued = Vec::new();

    // A run: accounts, reports, a legacy call, a revoked token, retried faults, malformed JSON.
    for account in client.accounts().await.unwrap() {
        campaigns(&client, &account.account_id).await.unwrap();
    }
    client
        .generic(&legacy_job(), &values("3141592"))
        .await
        .unwrap();
    issued.push(client.tokens().token().await.unwrap());
    mock.revoke_tokens();
    campaigns(&client, "3141592").await.unwrap();
    issued.push(client.tokens().token().await.unwrap());
    mock.set_faults(Faults {
        every_nth_429: Some(2),
        retry_after_secs: 0,
        every_nth_503: Some(3),
        every_nth_drop: Some(5),
        ..Faults::default()
    });
    for _ in 0..4 {
        campaigns(&client, "2718281").await.unwrap();
    }
    mock.set_faults(Faults {
        every_nth_malformed: Some(1),
        ..Faults::default()
    });
    let malformed = client.accounts().await.unwrap_err();
    // Whatever a caller might log about the client, its tokens and its errors.
    tracing::error!(?client, token = ?issued[1], error = %malformed, "the caller logs what it holds");

    // Rejected credentials, logged the way a caller would.
    let wrong_secret = "wrong-secret-0123456789";
    let wrong = ApiClient::with_backoff(
        &api_config(&mock.base_url(), 2),
        env_credentials("demo-app-id", wrong_secret),
        Backoff::fast(),
    )
    .unwrap();
    let rejected = wrong.accounts().await.unwrap_err();
    tracing::error!(error = %rejected, debug = ?rejected, client = ?wrong, "the caller logs the refusal");
    mock.stop().await;

    let text = logs.text();
    // The capture works: the run is there, at DEBUG and WARN.
    assert!(text.contains("/v1/query/accounts"), "{text}");
    assert!(text.contains("status=401"), "{text}");
    assert!(text.contains("retrying"), "{text}");
    assert!(text.contains("access token renewed"), "{text}");
    // And nothing secret is.
    let basic_b64 = basic.trim_start_matches("Basic ");
    let wrong_basic = env_credentials("demo-app-id", wrong_secret).basic_authorization();
    let mut secrets = vec![
        app_secret.clone(),
        basic_b64.to_owned(),
        wrong_secret.to_owned(),
        wrong_basic
            .expose_secret()
            .trim_start_matches("Basic ")
            .to_owned(),
    ];
    for token in &issued {
        secrets.push(token.secret().expose_secret().to_owned());
    }
    assert_eq!(issued.len(), 2);
    assert_ne!(issued[0], issued[1]);
    for secret in &secrets {
        assert!(!secret.is_empty());
        assert!(
            !text.contains(secret.as_str()),
            "a secret leaked into the logs:\n{text}"
        );
    }
}
