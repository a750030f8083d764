//! The API client against servers that misbehave on purpose (see `hostile.rs`): redirects to
//! another host, gzip bombs, error pages that quote the request's headers, answers whose head is
//! too large, certificates that do not verify. Issue 19, items 4, 5, 6 and 8.

use std::io::Write as _;
use std::sync::OnceLock;

use rokt_export::api::retry::Backoff;
use rokt_export::api::token::AuthError;
use rokt_export::api::{ApiClient, ApiError, Piece, ReportRequest};
use rokt_export::config::{Credentials, QueryJob, Report};
use secrecy::ExposeSecret;

use crate::auth::api_config;
use crate::client::{legacy_job, values};
use crate::hostile::{Hostile, Seen, TOKEN, UntrustedTls, json, raw, token_answer};

/// A client for `base_url` with fast backoff and `max_body_bytes` of 1 MiB.
fn client(base_url: &str, max_retries: u32, credentials: Credentials) -> ApiClient {
    let mut api = api_config(base_url, max_retries);
    api.max_body_bytes = 1 << 20;
    ApiClient::with_backoff(&api, credentials, Backoff::fast()).unwrap()
}

fn credentials() -> Credentials {
    crate::auth::env_credentials("app-id-4f9c", "app-secret/9+x=")
}

/// `prefix`, then 8 MiB of spaces, then `suffix`, gzipped: about 8 KB on the wire.
fn bomb(prefix: &str, suffix: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(prefix.as_bytes()).unwrap();
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..8 {
        gz.write_all(&spaces).unwrap();
    }
    gz.write_all(suffix.as_bytes()).unwrap();
    gz.finish().unwrap()
}

fn gzipped(body: &[u8]) -> Vec<u8> {
    raw(
        "200 OK",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        body,
    )
}

/// A JSON report body that is valid, and 8 MiB once inflated.
fn report_bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| bomb(r#"{"data": [{"campaign_id": "1"}"#, "]}"))
}

fn report<'a>(job: &'a QueryJob) -> ReportRequest<'a> {
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    ReportRequest {
        account_id: "3141592",
        job,
        start: day,
        last: day,
        timezone: "UTC",
        currency: "USD",
    }
}

fn campaigns_job() -> QueryJob {
    QueryJob::new(
        Report::Campaigns,
        vec!["campaign_id".into()],
        vec!["impressions".into()],
    )
}

fn assert_too_large(err: &ApiError) {
    match err {
        ApiError::Refused { message, .. } => {
            assert!(message.contains("max_body_bytes"), "{message}");
            assert!(message.contains("1 MiB"), "{message}");
        }
        other => panic!("expected a refusal of the body, got {other:?}"),
    }
    assert!(!err.is_retriable() && !err.is_unavailable() && !err.is_config());
}

#[tokio::test]
async fn a_gzip_bomb_is_refused_wherever_a_body_is_read() {
    // Issue 19, item 4: a small gzip answer that inflates far beyond max_body_bytes was read
    // whole (1 GiB of RSS), and a generic job's window even succeeded.
    let server = Hostile::start(|seen: &Seen, _| {
        if seen.is_token_request() {
            token_answer()
        } else {
            gzipped(report_bomb())
        }
    })
    .await;
    let client = client(&server.base_url(), 5, credentials());

    // A report streamed through the channel: refused once the count passes the limit.
    let job = campaigns_job();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let received = tokio::spawn(async move {
        let mut bytes = 0;
        while let Some(piece) = rx.recv().await {
            if let Piece::Data(d) = piece {
                bytes += d.len();
            }
        }
        bytes
    });
    let err = client
        .query_report_into(&report(&job), &tx)
        .await
        .unwrap_err();
    drop(tx);
    assert_too_large(&err);
    let received = received.await.unwrap();
    assert!(received <= 1 << 20, "{received} bytes went to the parser");

    // Read whole: a report, a generic job, the accounts list.
    assert_too_large(&client.query_report(&report(&job)).await.unwrap_err());
    assert_too_large(
        &client
            .generic(&legacy_job(), &values("3141592"))
            .await
            .unwrap_err(),
    );
    assert_too_large(&client.accounts().await.unwrap_err());
    assert_eq!(server.api_requests(), 4, "a refused body is not retried");
}

#[tokio::test]
async fn a_token_answer_that_inflates_past_the_bound_is_refused() {
    let answer = bomb(
        r#"{"access_token": "x", "expires_in": 3600, "pad": ""#,
        "\"}",
    );
    let server = Hostile::start(move |_: &Seen, _| gzipped(&answer)).await;
    let client = client(&server.base_url(), 5, credentials());

    let err = client.tokens().token().await.unwrap_err();

    match &err {
        AuthError::Malformed(message) => assert!(message.contains("larger than"), "{message}"),
        other => panic!("expected a refused token answer, got {other:?}"),
    }
    assert_eq!(server.seen().len(), 1, "not retried");
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    // Issue 19, item 5: a 307 to another host was followed and its answer loaded as Rokt data.
    let elsewhere = Hostile::start(|_: &Seen, _| json("200 OK", r#"[{"accountId": "666"}]"#)).await;
    let target = format!("{}/v1/query/accounts", elsewhere.base_url());
    let server = Hostile::start(move |seen: &Seen, _| {
        if seen.is_token_request() {
            token_answer()
        } else {
            raw("307 Temporary Redirect", &[("Location", &target)], b"")
        }
    })
    .await;
    let client = client(&server.base_url(), 5, credentials());

    let err = client.accounts().await.unwrap_err();

    match &err {
        ApiError::Status {
            status, message, ..
        } => {
            assert_eq!(*status, 307);
            assert!(message.contains(&elsewhere.base_url()), "{message}");
            assert!(message.contains("follows no redirects"), "{message}");
            assert!(message.contains("base_url"), "{message}");
        }
        other => panic!("expected the redirect as an error, got {other:?}"),
    }
    assert!(!err.is_retriable());
    assert!(elsewhere.seen().is_empty(), "the redirect was followed");
    assert_eq!(server.api_requests(), 1);
    let asked = server.seen();
    assert!(
        asked
            .iter()
            .any(|s| s.method == "GET" && s.path == "/v1/query/accounts"),
        "{asked:?}"
    );

    // The token endpoint's redirect is not followed either.
    let moved = Hostile::start(|_: &Seen, _| {
        raw(
            "301 Moved Permanently",
            &[("Location", "https://user:pw@elsewhere.example/token")],
            b"",
        )
    })
    .await;
    let err = client_for(&moved).tokens().token().await.unwrap_err();
    match &err {
        AuthError::Unexpected {
            status, message, ..
        } => {
            assert_eq!(*status, 301);
            assert!(
                message.contains("https://***@elsewhere.example/token"),
                "{message}"
            );
        }
        other => panic!("expected the redirect as an error, got {other:?}"),
    }
    assert!(err.is_config());
}

fn client_for(server: &Hostile) -> ApiClient {
    client(&server.base_url(), 3, credentials())
}

#[tokio::test]
async fn echoed_credentials_and_tokens_are_scrubbed_from_every_message() {
    // Issue 19, item 6: error pages that quote the request's headers put the Basic value and the
    // bearer token into logs and export_runs.error.
    let creds = credentials();
    let app_id = creds.app_id().expose_secret().to_owned();
    let app_secret = creds.app_secret().expose_secret().to_owned();
    let basic = creds.basic_authorization().expose_secret().to_owned();
    let basic_b64 = basic.trim_start_matches("Basic ").to_owned();
    let secrets = [
        app_id.clone(),
        app_secret.clone(),
        basic_b64.clone(),
        TOKEN.to_owned(),
    ];
    // The page quotes the headers, and the credentials once more as a form would carry them.
    let echo = move |seen: &Seen| {
        format!(
            "{} client_id={app_id}&client_secret={}",
            seen.head,
            app_secret
                .replace('/', "%2F")
                .replace('+', "%2B")
                .replace('=', "%3D")
        )
    };

    // The token endpoint: a 502 page (retried, then given up), and a 400 in OAuth's shape.
    let proxy = Hostile::start({
        let echo = echo.clone();
        move |seen: &Seen, _| raw("502 Bad Gateway", &[], echo(seen).as_bytes())
    })
    .await;
    let down = client(&proxy.base_url(), 1, credentials())
        .accounts()
        .await
        .unwrap_err();
    assert!(
        matches!(down, ApiError::Auth(AuthError::Unavailable { .. })),
        "{down:?}"
    );
    let refusing = Hostile::start({
        let echo = echo.clone();
        move |seen: &Seen, _| {
            let body =
                serde_json::json!({"error": "invalid_client", "error_description": echo(seen)});
            json("400 Bad Request", &body.to_string())
        }
    })
    .await;
    let rejected = client(&refusing.base_url(), 1, credentials())
        .accounts()
        .await
        .unwrap_err();
    assert!(
        matches!(rejected, ApiError::Auth(AuthError::Rejected { .. })),
        "{rejected:?}"
    );

    // An API call: the bearer token quoted back in a 400 (final) and a 503 (retried).
    let api = |status: &'static str| {
        let echo = echo.clone();
        Hostile::start(move |seen: &Seen, _| {
            if seen.is_token_request() {
                token_answer()
            } else {
                let body = serde_json::json!({ "message": echo(seen) });
                json(status, &body.to_string())
            }
        })
    };
    let refusing_api = api("400 Bad Request").await;
    let bad_request = client(&refusing_api.base_url(), 0, credentials())
        .accounts()
        .await
        .unwrap_err();
    assert!(
        matches!(bad_request, ApiError::Status { status: 400, .. }),
        "{bad_request:?}"
    );
    let busy_api = api("503 Service Unavailable").await;
    let unavailable = client(&busy_api.base_url(), 1, credentials())
        .accounts()
        .await
        .unwrap_err();
    assert!(
        matches!(unavailable, ApiError::RetriesExhausted { .. }),
        "{unavailable:?}"
    );

    for err in [&down, &rejected, &bad_request, &unavailable] {
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("***"), "nothing was quoted: {shown}");
        assert!(
            shown.to_ascii_lowercase().contains("authorization"),
            "{shown}"
        );
        for secret in &secrets {
            assert!(!shown.contains(secret.as_str()), "{secret} in {shown}");
        }
        assert!(!shown.contains("app-secret%2F9"), "{shown}");
    }
}

#[tokio::test]
async fn a_certificate_that_does_not_verify_is_not_retried() {
    // Issue 19, item 8: TLS certificate failures were retried as if the network had hiccuped.
    let server = UntrustedTls::start().await;
    let client = client(&server.base_url(), 3, credentials());

    let err = client.accounts().await.unwrap_err();

    match &err {
        ApiError::Auth(AuthError::Request { message, .. }) => {
            assert!(
                message.to_ascii_lowercase().contains("certificate"),
                "{message}"
            );
        }
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    assert!(!err.is_retriable() && !err.is_unavailable());
    assert_eq!(server.connections(), 1, "the handshake was retried");
}

#[tokio::test]
async fn an_answer_whose_head_is_too_large_is_not_retried() {
    // Issue 19, item 8: "message head is too large" was retried as transient.
    let huge = "x".repeat(1 << 20);
    let token =
        Hostile::start(move |_: &Seen, _| raw("200 OK", &[("X-Padding", huge.as_str())], b"{}"))
            .await;
    let err = client(&token.base_url(), 3, credentials())
        .accounts()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Auth(AuthError::Request { .. })),
        "{err:?}"
    );
    assert_eq!(token.seen().len(), 1, "retried");

    let huge = "x".repeat(1 << 20);
    let api = Hostile::start(move |seen: &Seen, _| {
        if seen.is_token_request() {
            token_answer()
        } else {
            raw("200 OK", &[("X-Padding", huge.as_str())], b"[]")
        }
    })
    .await;
    let err = client(&api.base_url(), 3, credentials())
        .accounts()
        .await
        .unwrap_err();
    match &err {
        ApiError::Transport { message, .. } => {
            assert!(message.contains("too large"), "{message}");
        }
        other => panic!("expected a transport failure, got {other:?}"),
    }
    assert_eq!(api.api_requests(), 1, "retried");
}
