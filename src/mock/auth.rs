//! The token endpoint and the bearer check, as Rokt answers them.
//!
//! Rokt's token endpoint is an AWS Cognito OAuth2 endpoint: rejected credentials are 400 or 403
//! with an OAuth error body (never 401), while an unknown, expired or revoked bearer token on an API
//! call is answered 401 with `{"message": ...}` by the gateway in front of the API. The mock does
//! the same:
//! - missing or unreadable `Authorization: Basic`, wrong content type, missing `grant_type`:
//!   400 `{"error": "invalid_request"}`;
//! - a `grant_type` other than `client_credentials`: 400 `{"error": "unsupported_grant_type"}`;
//! - an unknown app id: 400 `{"error": "invalid_client"}`; the right app id with a wrong secret:
//!   403 `{"error": "invalid_client"}` (so clients see both codes Rokt documents).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::data::mix;
use super::{Shared, json_response, message};

/// Tokens issued and not revoked, with when each expires (`None`: a lifetime beyond the clock's
/// range, such as 2^64-1 seconds, never expires).
#[derive(Default)]
pub(crate) struct TokenStore {
    tokens: Mutex<HashMap<String, Option<Instant>>>,
}

/// Makes tokens unique across every simulated server of the process (two servers with the same
/// seed must not accept each other's tokens by accident).
static ISSUED: AtomicU64 = AtomicU64::new(0);

impl TokenStore {
    fn issue(&self, seed: u64, lifetime: Duration) -> String {
        let n = ISSUED.fetch_add(1, Ordering::Relaxed) + 1;
        let a = mix(seed, n);
        let b = mix(a, u64::from(std::process::id()));
        let c = mix(b, n.rotate_left(17));
        let token = format!("mock.{a:016x}{b:016x}{c:016x}");
        let expires = Instant::now().checked_add(lifetime);
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.clone(), expires);
        token
    }

    /// Forgets every issued token: each becomes unknown (401).
    pub(crate) fn revoke_all(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn check(&self, token: &str) -> Result<(), &'static str> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        match tokens.get(token) {
            None => Err("Unauthorized"),
            Some(Some(expires)) if Instant::now() >= *expires => {
                Err("The incoming token has expired")
            }
            Some(_) => Ok(()),
        }
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        serde_json::json!({"error": error, "error_description": description}).to_string(),
    )
}

/// `POST /auth/oauth2/token`.
pub(crate) async fn token(
    State(shared): State<super::SharedRef>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let invalid_request = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", d);
    let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
    else {
        return invalid_request(
            "client authentication is required: Authorization: Basic base64(app_id:app_secret)",
        );
    };
    let Some((app_id, app_secret)) = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_owned(), b.to_owned())))
    else {
        return invalid_request("the Basic credentials are not base64(app_id:app_secret)");
    };
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    if !form_type {
        return invalid_request("Content-Type must be application/x-www-form-urlencoded");
    }
    let grant = form_value(&body, "grant_type");
    match grant.as_deref() {
        None => return invalid_request("grant_type is required"),
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only grant_type=client_credentials is supported",
            );
        }
    }
    if app_id != shared.config.app_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "Client does not exist",
        );
    }
    if app_secret != shared.config.app_secret {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "invalid_client",
            "Client authentication failed",
        );
    }
    let lifetime = shared.token_lifetime();
    let token = shared.tokens.issue(shared.config.seed, lifetime);
    json_response(
        StatusCode::OK,
        serde_json::json!({
            "access_token": token,
            "expires_in": lifetime.as_secs(),
            "token_type": "Bearer",
        })
        .to_string(),
    )
}

/// Checks `Authorization: Bearer <token>`: `None` when the token is good, else the 401 to answer.
pub(crate) fn reject_bearer(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let result = match token {
        None | Some("") => Err("Unauthorized"),
        Some(t) => shared.tokens.check(t),
    };
    result
        .err()
        .map(|m| message(StatusCode::UNAUTHORIZED, m).into_response())
}

/// The first value of `key` in an `application/x-www-form-urlencoded` body.
fn form_value(body: &[u8], key: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode_form(k) == key).then(|| decode_form(v))
    })
}

fn decode_form(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_form_values() {
        assert_eq!(
            form_value(b"scope=a+b&grant_type=client%5Fcredentials", "grant_type").as_deref(),
            Some("client_credentials")
        );
        assert_eq!(form_value(b"grant_type", "grant_type").as_deref(), Some(""));
        assert_eq!(form_value(b"x=1", "grant_type"), None);
    }

    #[test]
    fn tokens_expire_and_can_be_revoked() {
        let store = TokenStore::default();
        let live = store.issue(1, Duration::from_secs(60));
        let dead = store.issue(1, Duration::ZERO);
        assert_ne!(live, dead);
        assert_eq!(store.check(&live), Ok(()));
        assert_eq!(store.check(&dead), Err("The incoming token has expired"));
        store.revoke_all();
        assert_eq!(store.check(&live), Err("Unauthorized"));
        let forever = store.issue(1, Duration::from_secs(u64::MAX));
        assert_eq!(store.check(&forever), Ok(()));
    }
}
