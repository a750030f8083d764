//! The token manager against the simulated Rokt API over real HTTP: single flight, renewal ahead of
//! expiry, revocation, rejected credentials, an unreachable or flaky token endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rokt_export::api::retry::Backoff;
use rokt_export::api::token::{AuthError, TokenManager};
use rokt_export::api::{ApiClient, ApiError};
use rokt_export::config::{ApiConfig, Credentials, Env};
use rokt_export::mock::{Faults, MockConfig, MockServer};
use secrecy::ExposeSecret;

/// An `[api]` section pointing at `base_url`, with `max_retries` retries.
pub fn api_config(base_url: &str, max_retries: u32) -> ApiConfig {
    ApiConfig {
        base_url: base_url.to_owned(),
        token_path: "/auth/oauth2/token".into(),
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        max_concurrent_requests: 4,
        max_retries,
        max_body_bytes: 128 << 20,
        allow_insecure_http: false,
    }
}

/// A simulated API with default data and the given token lifetime.
pub async fn mock_with_lifetime(token_lifetime: Duration) -> MockServer {
    MockServer::start(MockConfig {
        token_lifetime,
        ..MockConfig::default()
    })
    .await
    .expect("start the simulated API")
}

/// A client for `mock` with fast backoff (Retry-After is still honoured).
pub fn client(mock: &MockServer, max_retries: u32) -> ApiClient {
    ApiClient::with_backoff(
        &api_config(&mock.base_url(), max_retries),
        mock.credentials(),
        Backoff::fast(),
    )
    .expect("build the client")
}

/// Credentials as an operator sets them: through ROKT_APP_ID and ROKT_APP_SECRET.
pub fn env_credentials(app_id: &str, app_secret: &str) -> Credentials {
    Credentials::from_env(&Env::from_pairs([
        ("ROKT_APP_ID", app_id),
        ("ROKT_APP_SECRET", app_secret),
    ]))
    .expect("credentials from the environment")
}

fn manager(base_url: &str, credentials: Credentials, max_retries: u32) -> TokenManager {
    rokt_export::tls::install_crypto_provider();
    TokenManager::with_backoff(
        reqwest::Client::new(),
        &api_config(base_url, max_retries),
        credentials,
        Backoff::fast(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_callers_share_one_token_request() {
    let mock = mock_with_lifetime(Duration::from_secs(3600)).await;
    let tokens = manager(&mock.base_url(), mock.credentials(), 3);

    let callers: Vec<_> = (0..20)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.token().await })
        })
        .collect();
    let mut generations = Vec::new();
    for caller in callers {
        generations.push(caller.await.unwrap().unwrap().generation());
    }

    assert_eq!(mock.counters().token_requests, 1);
    assert_eq!(tokens.renewals(), 1);
    assert!(generations.iter().all(|g| *g == generations[0]));
    // Cached from now on.
    tokens.token().await.unwrap();
    assert_eq!(mock.counters().token_requests, 1);
    mock.stop().await;
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_ahead_of_expiry_not_on_every_request() {
    // A 3-second token is renewed 0.3 s before it expires. Keep calling until two renewals have
    // happened (about 2.7 s): the requests in between reuse the cached token, and none of them is
    // ever answered 401 because the old token is replaced before the server expires it.
    let mock = mock_with_lifetime(Duration::from_secs(3)).await;
    let client = client(&mock, 3);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut calls = 0u64;
    while client.tokens().renewals() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no renewal in 20 s");
        client.accounts().await.unwrap();
        calls += 1;
        // Pace the loop so it is a run of requests, not a busy loop; not a wait for the server.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counters = mock.counters();
    assert_eq!(counters.token_requests, 2);
    assert_eq!(client.tokens().renewals(), 2);
    assert!(calls > 4, "only {calls} calls: the token was not cached");
    assert_eq!(
        counters.api_requests_by_status.get(&401),
        None,
        "a token was used after it expired: {counters:?}"
    );
    mock.stop().await;
}

#[tokio::test]
async fn a_revoked_token_is_renewed_once_and_the_call_succeeds() {
    let mock = mock_with_lifetime(Duration::from_secs(3600)).await;
    let client = client(&mock, 3);
    client.accounts().await.unwrap();
    let before = client.tokens().token().await.unwrap();

    mock.revoke_tokens();
    let response = client
        .generic(
            &super::client::legacy_job(),
            &super::client::values("3141592"),
        )
        .await
        .unwrap();

    assert_eq!(response.attempts, 2, "one 401, then the retry");
    let after = client.tokens().token().await.unwrap();
    assert_ne!(before, after);
    assert_eq!(after.generation(), before.generation() + 1);
    let counters = mock.counters();
    assert_eq!(counters.token_requests, 2);
    assert_eq!(counters.api_requests_by_status.get(&401), Some(&1));
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_401s_cause_one_renewal() {
    let mock = mock_with_lifetime(Duration::from_secs(3600)).await;
    let client = client(&mock, 3);
    client.accounts().await.unwrap();
    mock.revoke_tokens();

    let calls: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.accounts().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }

    let counters = mock.counters();
    assert_eq!(counters.token_requests, 2, "{counters:?}");
    assert_eq!(client.tokens().renewals(), 2);
    mock.stop().await;
}

#[tokio::test]
async fn a_token_that_keeps_being_refused_fails_after_max_retries_renewals() {
    // Tokens issued already expired: every API call answers 401. Each 401 is retried with a fresh
    // token, within max_retries, then a clear error that is not an outage.
    let mock = mock_with_lifetime(Duration::ZERO).await;
    let client = client(&mock, 3);
    let err = client.accounts().await.unwrap_err();
    match &err {
        ApiError::Status {
            status,
            endpoint,
            message,
        } => {
            assert_eq!(*status, 401);
            assert_eq!(endpoint, "GET /v1/query/accounts");
            assert!(message.contains("refused 4 times"), "{message}");
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    assert!(!err.is_retriable());
    assert!(!err.is_unavailable());
    let counters = mock.counters();
    assert_eq!(counters.api_requests, 4);
    assert_eq!(counters.token_requests, 4);
    assert_eq!(client.stats().retries, 3);
    mock.stop().await;
}

#[tokio::test]
async fn a_401_after_a_renewal_and_a_503_renews_again() {
    // Issue 19, item 1. Every 2nd request finds its token revoked, every 3rd is a 503: the second
    // call gets 401 (renew), 503 (back off), 401 again. "Renew once" gave up there.
    let mock = mock_with_lifetime(Duration::from_secs(3600)).await;
    let client = client(&mock, 5);
    mock.set_faults(Faults {
        every_nth_revoke: Some(2),
        every_nth_503: Some(3),
        ..Faults::default()
    });

    let mut attempts = Vec::new();
    for _ in 0..6 {
        let response = client
            .generic(
                &super::client::legacy_job(),
                &super::client::values("3141592"),
            )
            .await
            .unwrap();
        attempts.push(response.attempts);
    }

    let counters = mock.counters();
    assert_eq!(
        counters.api_requests_by_status.get(&200),
        Some(&6),
        "{counters:?}"
    );
    assert!(
        attempts.iter().any(|a| *a >= 3),
        "no call met two failures: {attempts:?}"
    );
    let refused = counters
        .api_requests_by_status
        .get(&401)
        .copied()
        .unwrap_or(0);
    assert!(refused >= 3, "{counters:?}");
    // One token per 401 (the first token, then one renewal each).
    assert_eq!(counters.token_requests, refused + 1, "{counters:?}");
    assert_eq!(
        u64::from(attempts.iter().sum::<u32>()),
        counters.api_requests
    );
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_429s_and_503s_together_do_not_fail_a_run() {
    // The issue's scenario: four requests in flight, a token revoked every 9th request while the
    // API answers 429 with Retry-After and 503 bursts. Every call succeeds, within a retry
    // budget that counts the 401s; no request is sent during a Retry-After pause.
    let mock = mock_with_lifetime(Duration::from_secs(3600)).await;
    let client = client(&mock, 20);
    mock.set_faults(Faults {
        every_nth_revoke: Some(9),
        every_nth_429: Some(7),
        retry_after_secs: 1,
        every_nth_503: Some(4),
        latency_ms: 20,
        ..Faults::default()
    });

    let workers: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..6 {
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
    let by_status = &counters.api_requests_by_status;
    assert_eq!(by_status.get(&200), Some(&24), "{counters:?}");
    for status in [401, 429, 503] {
        assert!(by_status.contains_key(&status), "no {status}: {counters:?}");
    }
    assert_eq!(counters.early_requests, 0, "{counters:?}");
    mock.stop().await;
}

#[tokio::test]
async fn a_token_lifetime_of_2_64_seconds_is_clamped_not_a_panic() {
    // Issue 19, item 3: `expires_in` = 18446744073709551615 overflowed the monotonic clock.
    let mock = mock_with_lifetime(Duration::from_secs(u64::MAX)).await;
    let client = client(&mock, 3);

    client.accounts().await.unwrap();
    client.accounts().await.unwrap();

    assert_eq!(mock.counters().token_requests, 1, "the token is cached");
    assert_eq!(client.tokens().renewals(), 1);
    mock.stop().await;
}

#[tokio::test]
async fn wrong_credentials_fail_fast_naming_the_variables_without_the_secret() {
    let mock = mock_with_lifetime(Duration::from_secs(3600)).await;
    let secret = "s3cr3t-that-is-wrong";
    let credentials = env_credentials("demo-app-id", secret);
    let basic = credentials.basic_authorization();
    let basic_b64 = basic
        .expose_secret()
        .trim_start_matches("Basic ")
        .to_owned();
    // Five retries allowed: a refusal must not use any of them.
    let client = ApiClient::with_backoff(
        &api_config(&mock.base_url(), 5),
        credentials,
        Backoff::fast(),
    )
    .unwrap();

    let err = client.accounts().await.unwrap_err();

    let ApiError::Auth(AuthError::Rejected { status, code, .. }) = &err else {
        panic!("expected rejected credentials, got {err:?}");
    };
    assert_eq!(*status, 403);
    assert_eq!(code, "invalid_client");
    assert!(!err.is_retriable());
    assert!(!err.is_unavailable());
    let text = err.to_string();
    assert!(text.contains("ROKT_APP_ID"), "{text}");
    assert!(text.contains("ROKT_APP_SECRET"), "{text}");
    assert!(text.contains("invalid_client"), "{text}");
    for shown in [text, format!("{err:?}"), format!("{client:?}")] {
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains(&basic_b64), "{shown}");
    }
    let counters = mock.counters();
    assert_eq!(counters.token_requests, 1);
    assert_eq!(counters.api_requests, 0);
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_waiting_for_a_refused_renewal_share_the_refusal() {
    // A stand-in token endpoint that refuses slowly, so that every caller is waiting for the one
    // request when it fails.
    let requests = Arc::new(AtomicU32::new(0));
    let seen = requests.clone();
    let app = axum::Router::new().route(
        "/auth/oauth2/token",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(500)).await;
                (
                    axum::http::StatusCode::BAD_REQUEST,
                    [("content-type", "application/json")],
                    r#"{"error":"invalid_client","error_description":"Client does not exist"}"#,
                )
            }
        }),
    );
    let (base_url, server) = serve(app).await;
    let tokens = manager(&base_url, env_credentials("id", "secret"), 5);

    let callers: Vec<_> = (0..5)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.token().await })
        })
        .collect();
    for caller in callers {
        let err = caller.await.unwrap().unwrap_err();
        assert!(
            matches!(err, AuthError::Rejected { status: 400, .. }),
            "{err:?}"
        );
    }

    assert_eq!(requests.load(Ordering::SeqCst), 1);
    assert_eq!(tokens.renewals(), 0);
    server.abort();
}

/// Serves `app` on a loopback port (bound before serving, so it answers at once).
async fn serve(app: axum::Router) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    (
        base_url,
        tokio::spawn(async move { axum::serve(listener, app).await }),
    )
}

#[tokio::test]
async fn an_unknown_app_id_from_files_names_the_file_variables() {
    let mock = mock_with_lifetime(Duration::from_secs(3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let id_file = dir.path().join("id");
    let secret_file = dir.path().join("secret");
    std::fs::write(&id_file, "nobody\n").unwrap();
    std::fs::write(&secret_file, "demo-app-secret\n").unwrap();
    let credentials = Credentials::from_env(&Env::from_pairs([
        ("ROKT_APP_ID_FILE", id_file.to_str().unwrap()),
        ("ROKT_APP_SECRET_FILE", secret_file.to_str().unwrap()),
    ]))
    .unwrap();

    let err = manager(&mock.base_url(), credentials, 5)
        .token()
        .await
        .unwrap_err();

    let text = err.to_string();
    assert!(
        matches!(err, AuthError::Rejected { status: 400, .. }),
        "{err:?}"
    );
    assert!(text.contains("ROKT_APP_ID_FILE"), "{text}");
    assert!(text.contains("ROKT_APP_SECRET_FILE"), "{text}");
    assert!(!text.contains("demo-app-secret"), "{text}");
    assert_eq!(mock.counters().token_requests, 1);
    mock.stop().await;
}

#[tokio::test]
async fn a_wrong_token_path_is_not_mistaken_for_bad_credentials() {
    let mock = mock_with_lifetime(Duration::from_secs(3600)).await;
    let mut api = api_config(&mock.base_url(), 5);
    api.token_path = "/oauth/token".into();
    rokt_export::tls::install_crypto_provider();
    let tokens = TokenManager::with_backoff(
        reqwest::Client::new(),
        &api,
        mock.credentials(),
        Backoff::fast(),
    );

    let err = tokens.token().await.unwrap_err();

    assert!(
        // The API gateway answers a path it does not know 403 "Missing Authentication Token"
        // (issue 16): that is no verdict on the credentials.
        matches!(err, AuthError::Unexpected { status: 403, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("token_path"), "{err}");
    assert!(
        err.to_string().contains("Missing Authentication Token"),
        "{err}"
    );
    assert!(!err.is_retriable());
    mock.stop().await;
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_retried_then_unavailable() {
    // A port nobody listens on: connections are refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = ApiClient::with_backoff(
        &api_config(&base_url, 2),
        Credentials::new("id", "secret"),
        Backoff::fast(),
    )
    .unwrap();

    let err = client.accounts().await.unwrap_err();

    match &err {
        ApiError::Auth(AuthError::Unavailable { attempts, last }) => {
            assert_eq!(*attempts, 3);
            // The cause is spelled out, without the URL repeated.
            assert!(last.contains("Connection refused"), "{last}");
            assert!(!last.contains("for url"), "{last}");
        }
        other => panic!("expected an unavailable token endpoint, got {other:?}"),
    }
    assert!(err.is_unavailable());
    assert!(err.is_retriable());
    assert_eq!(client.stats().total_requests(), 0);
}

#[tokio::test]
async fn token_endpoint_429_and_5xx_are_retried() {
    // The simulated API injects faults on API paths only, so this token endpoint is a small
    // stand-in that answers 503, then 429, then a token.
    let requests = Arc::new(AtomicU32::new(0));
    let seen = requests.clone();
    let app = axum::Router::new().route(
        "/auth/oauth2/token",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
                match n {
                    1 => (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        [("retry-after", "0")],
                        String::new(),
                    ),
                    2 => (
                        axum::http::StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "0")],
                        String::new(),
                    ),
                    _ => (
                        axum::http::StatusCode::OK,
                        [("content-type", "application/json")],
                        r#"{"access_token":"stand-in","expires_in":3600,"token_type":"Bearer"}"#
                            .to_owned(),
                    ),
                }
            }
        }),
    );
    let (base_url, server) = serve(app).await;

    let tokens = manager(&base_url, Credentials::new("id", "secret"), 3);
    let token = tokens.token().await.unwrap();

    assert_eq!(token.generation(), 1);
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    assert_eq!(tokens.renewals(), 1);
    server.abort();
}
