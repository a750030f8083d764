//! What reaches a terminal or a log: no colour codes unless on a terminal, and text from outside
//! (an API's error message) escaped in the text log, the run summary and `status`.

use std::net::SocketAddr;
use std::process::Output;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;

use crate::helpers::{TestDb, binary, config_file};

/// What a hostile API puts in its error message: a forged log line and a terminal escape.
const FORGED: &str = "2026-01-01T00:00:00.000000Z ERROR forged";
const HOSTILE: &str =
    "bad request\n2026-01-01T00:00:00.000000Z ERROR forged: pay \x1b[31mnow\x1b[0m\r";

/// An API that hands out tokens and answers every other request 400 with [`HOSTILE`] as its
/// message (followed by 5,000 more characters).
async fn hostile_api() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/auth/oauth2/token",
            post(|| async {
                axum::Json(serde_json::json!({
                    "access_token": "t0k3n", "token_type": "Bearer", "expires_in": 3600
                }))
            }),
        )
        .fallback(|| async {
            let message = format!("{HOSTILE}{}", "x".repeat(5_000));
            (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({ "message": message })),
            )
        });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn run(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    let mut cmd = std::process::Command::new(binary());
    cmd.args(args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// No raw control character but newlines ending lines, no line that starts with the forged
/// one, and the message's text there, escaped.
fn assert_escaped(what: &str, text: &str) {
    assert!(
        !text.contains('\x1b'),
        "{what} holds an escape character:\n{text}"
    );
    assert!(
        !text.contains('\r'),
        "{what} holds a carriage return:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with(FORGED)),
        "{what} holds a forged line:\n{text}"
    );
    assert!(text.contains(&format!("\\n{FORGED}")), "{what}:\n{text}");
    assert!(text.contains("\\u{1b}[31mnow"), "{what}:\n{text}");
    for line in text.lines() {
        assert!(
            line.chars().count() < 6_000,
            "{what}: a line of {} characters",
            line.chars().count()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_text_is_escaped_in_the_log_the_summary_and_status_and_pipes_get_no_colour() {
    let db = TestDb::new().await;
    let api = hostile_api().await;
    let (_dir, config) = config_file(
        r#"
[[jobs]]
name = "campaign_daily"
schedule = "15 5 * * *"
accounts = ["3141592"]
report = "campaigns"
metrics = ["impressions"]
timezone = "UTC"
currency = "USD"
"#,
    );
    let config = config.display().to_string();
    let env = vec![
        ("DATABASE_URL", db.url.clone()),
        ("ROKT_API_BASE_URL", format!("http://{api}")),
        ("ROKT_APP_ID", "app".to_owned()),
        ("ROKT_APP_SECRET", "secret".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    let args = |rest: &[&str]| {
        let mut a = vec!["--config".to_owned(), config.clone()];
        a.extend(rest.iter().map(|s| (*s).to_owned()));
        a
    };
    let out = run(
        args(&[
            "--run-now",
            "campaign_daily",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-02",
        ]),
        env.clone(),
    )
    .await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    // stderr is a pipe here: plain text, no colour codes.
    assert!(stderr.contains("window failed"), "{stderr}");
    assert_escaped("the log", &stderr);
    assert_escaped("the summary", &stdout);

    let out = run(args(&["status"]), env.clone()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout.contains("last error"), "{stdout}");
    assert_escaped("status", &stdout);
}
